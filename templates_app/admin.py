from django import forms
from django.contrib import admin

from templates_app.models import MailTemplate, MailTemplateTranslation
from templates_app.placeholders import placeholder_names
from templates_app.rendering import check_template
from templates_app.services import TEXT_FIELDS


class TranslationAdminForm(forms.ModelForm):
    """The admin bypasses the services; it still may not store a template that fails the
    sandbox's check (syntax, tags, placeholders)."""

    class Meta:
        model = MailTemplateTranslation
        fields = ("language", *TEXT_FIELDS)

    def clean(self):
        cleaned = super().clean()
        template = getattr(self.instance, "template", None)
        names = placeholder_names(template.template_type if template else None)
        for name in TEXT_FIELDS:
            problems = check_template(cleaned.get(name) or "", placeholders=names)
            if problems:
                self.add_error(name, problems)
        return cleaned


class TranslationInline(admin.StackedInline):
    model = MailTemplateTranslation
    form = TranslationAdminForm
    extra = 0


@admin.register(MailTemplate)
class MailTemplateAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "template_type",
        "report",
        "add_attachment",
        "due_filter",
        "export_type",
        "attachment_type",
        "owner_group",
    )
    list_filter = ("template_type", "add_attachment", "due_filter", "export_type")
    search_fields = ("name", "description")
    list_select_related = ("owner_group",)
    readonly_fields = ("created_at", "updated_at")
    inlines = [TranslationInline]
