from functools import partial

from crispy_forms.bootstrap import Tab, TabHolder
from crispy_forms.layout import Div, Fieldset, Layout
from django import forms
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from calmail.common.forms import CrispyFormMixin, prepare_team_field
from calmail.common.roles import is_administrator
from calmail.common.teams import only_team
from calmail.common.widgets import RecipientPicker
from inventory.models import Language
from inventory.recipients import describe_text
from inventory.selectors import owner_group_choices
from templates_app.models import MailTemplate
from templates_app.placeholders import placeholder_help
from templates_app.reports import report_choices
from templates_app.services import (
    EDITABLE_FIELDS,
    LANGUAGES,
    TEXT_FIELDS,
    texts_of,
    validate_texts,
)

# What an empty owner group means (templates_app.selectors), for administrators.
EMPTY_OWNER_HELP = _(
    "Empty: only administrators manage the template; everyone with access can still see and use it."
)


class PreRendered:
    """A crispy layout object that inserts finished HTML (crispy's HTML() would run it
    through the template engine again, and the placeholder examples are template code)."""

    def __init__(self, html: str):
        self.html = html

    def render(self, form, context, template_pack=None, **kwargs):
        return self.html


def text_field_name(name: str, language: str) -> str:
    return f"{name}_{language}"


class MailTemplateForm(CrispyFormMixin, forms.ModelForm):
    """Create/edit a template with its texts per language. The service checks the texts
    (syntax with line numbers, placeholders) and saves; its errors come back onto the
    fields named "<field>_<language>"."""

    report = forms.ChoiceField(label=_("Report name"), required=False)

    class Meta:
        model = MailTemplate
        fields = EDITABLE_FIELDS
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, user, **kwargs):
        self.user = user
        instance = kwargs.get("instance")
        if instance is not None and instance.pk and "initial" not in kwargs:
            kwargs["initial"] = {
                text_field_name(name, language): value
                for language, texts in texts_of(instance).items()
                for name, value in texts.items()
            }
        elif instance is None or not instance.pk:
            team = only_team(user)
            if team is not None:
                kwargs.setdefault("initial", {}).setdefault("owner_group", team.pk)
        super().__init__(*args, **kwargs)

    def prepare_fields(self):
        for language in LANGUAGES:
            self.fields[text_field_name("subject", language)] = forms.CharField(
                label=_("Subject"), max_length=998, required=False
            )
            self.fields[text_field_name("body_html", language)] = forms.CharField(
                label=_("HTML body"),
                required=False,
                strip=False,
                widget=forms.Textarea(attrs={"rows": 12, "class": "font-monospace"}),
            )
            self.fields[text_field_name("body_text", language)] = forms.CharField(
                label=_("Text body"),
                required=False,
                strip=False,
                help_text=_("Leave empty to send the HTML body as plain text."),
                widget=forms.Textarea(attrs={"rows": 8, "class": "font-monospace"}),
            )
        self.fields["report"].choices = [("", _("no report")), *report_choices()]
        self.fields["template_type"].widget.attrs["data-template-type-select"] = ""
        self.fields["report"].widget.attrs["data-report-select"] = ""
        owner_group = self.fields["owner_group"]
        owner_group.queryset = owner_group_choices(user=self.user)
        administrator = is_administrator(self.user)
        # A template without a group is managed by administrators only (selectors).
        self.team_alert = prepare_team_field(
            owner_group, administrator=administrator, empty_help=EMPTY_OWNER_HELP
        )
        if not administrator:
            owner_group.empty_label = None
            owner_group.help_text = _("One of your groups; its members manage the template.")

    def build_layout(self):
        tabs = [
            Tab(
                str(label),
                *(text_field_name(name, language) for name in TEXT_FIELDS),
                css_id=f"texts-{language}",
            )
            for language, label in Language.choices
        ]
        placeholders = render_to_string("templates_app/_placeholders.html", placeholder_help())
        return Layout(
            Div(
                Div(
                    Fieldset(
                        _("Template"),
                        "name",
                        Div(
                            Div("template_type", css_class="col-md-6"),
                            Div("owner_group", css_class="col-md-6"),
                            css_class="row",
                        ),
                        "description",
                    ),
                    Fieldset(
                        _("Report and attachment"),
                        Div(
                            Div("report", css_class="col-md-6"),
                            Div("add_attachment", css_class="col-md-6"),
                            css_class="row",
                        ),
                        Div(
                            Div("due_filter", css_class="col-md-6"),
                            Div("due_window_days", css_class="col-md-6"),
                            css_class="row",
                        ),
                        Div(
                            Div("export_type", css_class="col-md-4"),
                            Div("attachment_type", css_class="col-md-4"),
                            Div("csv_separator", css_class="col-md-4"),
                            css_class="row",
                        ),
                        "empty_attachment_allowed",
                    ),
                    Fieldset(
                        _("Sender"),
                        Div(
                            Div("from_email", css_class="col-md-6"),
                            Div("from_name", css_class="col-md-6"),
                            css_class="row",
                        ),
                    ),
                    Fieldset(_("Texts"), "default_language", TabHolder(*tabs)),
                    css_class="col-lg-8",
                ),
                Div(PreRendered(placeholders), css_class="col-lg-4"),
                css_class="row",
            )
        )

    def clean(self):
        cleaned_data = super().clean()
        # The service checks the texts again on save; checked here too, their errors come
        # in the same round as those of the other fields, not only once those are fixed.
        try:
            validate_texts(
                template_type=cleaned_data.get("template_type") or "",
                default_language=cleaned_data.get("default_language") or "",
                translations=self.translations(),
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field, message)
        return cleaned_data

    def service_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}

    def translations(self) -> dict[str, dict[str, str]]:
        return {
            language: {
                name: self.cleaned_data.get(text_field_name(name, language)) or ""
                for name in TEXT_FIELDS
            }
            for language in LANGUAGES
        }


class DuplicateForm(CrispyFormMixin, forms.Form):
    submit_label = _("Duplicate")

    name = forms.CharField(label=_("Name of the copy"), max_length=200)
    owner_group = forms.ModelChoiceField(label=_("Owner group"), queryset=None, required=False)

    def __init__(self, *args, user, **kwargs):
        self.user = user
        initial = kwargs.get("initial") or {}
        if not initial.get("owner_group") and not is_administrator(user):
            # The copy of a template without a group needs one of the user's teams.
            team = only_team(user)
            if team is not None:
                kwargs["initial"] = {**initial, "owner_group": team.pk}
        super().__init__(*args, **kwargs)

    def prepare_fields(self):
        field = self.fields["owner_group"]
        field.queryset = owner_group_choices(user=self.user)
        administrator = is_administrator(self.user)
        self.team_alert = prepare_team_field(
            field, administrator=administrator, empty_help=EMPTY_OWNER_HELP
        )
        if not administrator:
            field.empty_label = None

    def clean_name(self):
        name = self.cleaned_data["name"]
        if MailTemplate.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A template with this name already exists."))
        return name


class PreviewForm(forms.Form):
    """GET form of the preview page: whom to render for, in which language."""

    recipient = forms.CharField(
        label=_("Recipient"),
        max_length=400,
        widget=RecipientPicker(single=True),
        help_text=_(
            "Type to search users, customers, distribution lists and system addresses, or enter an address."
        ),
    )
    member = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=[("", _("the recipient's language")), *Language.choices],
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        widget = self.fields["recipient"].widget
        widget.configure(
            search_url=reverse("inventory:recipient_search"),
            describe=partial(describe_text, user=user),
        )
        widget.attrs.update(
            {
                "class": "form-control",
                "placeholder": _("customer:5, user:12, name@example.com …"),
            }
        )
        self.fields["language"].widget.attrs["class"] = "form-select"
