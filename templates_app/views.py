from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.decorators.clickjacking import xframe_options_sameorigin

from calmail.common.html import body_frame_response, protect_download
from calmail.common.lists import CalmailListView
from calmail.common.sections import (
    SectionBulkView,
    SectionDeleteView,
    SectionDuplicateView,
    SectionFormView,
    SectionObjectMixin,
    bulk_delete_action,
)
from inventory.recipients import Recipient, Skipped, check_selection, resolve_selection
from templates_app import services
from templates_app.filters import MailTemplateFilter
from templates_app.forms import DuplicateForm, MailTemplateForm, PreviewForm
from templates_app.models import MailTemplate
from templates_app.rendering import TemplateRenderError
from templates_app.selectors import (
    ADD,
    CHANGE,
    DELETE,
    VIEW,
    TemplateRights,
    deletable_templates,
    template_list,
    template_with_texts,
)
from templates_app.tables import MailTemplateTable

LIST_TITLE = gettext_lazy("Templates")

# --- list and bulk delete -------------------------------------------------------------------


def _bulk_delete_refusal(template):
    users = services.template_usages(template)
    if users:
        return _("it is used by: %(users)s.") % {"users": ", ".join(users[:10])}
    return None


BULK_ACTIONS = {
    "delete": bulk_delete_action(
        service=services.mail_template_delete,
        keyword="template",
        permission=DELETE,
        refusal=_bulk_delete_refusal,
        done_message=ngettext_lazy(
            "%(count)d template deleted.", "%(count)d templates deleted.", "count"
        ),
    )
}


class MailTemplateListView(CalmailListView):
    permission_required = VIEW
    model = MailTemplate
    table_class = MailTemplateTable
    filterset_class = MailTemplateFilter
    title = LIST_TITLE
    export_name = "templates"
    create_url_name = "templates_app:create"
    create_label = gettext_lazy("New template")
    create_permission = ADD
    bulk_url_name = "templates_app:bulk"
    bulk_actions = BULK_ACTIONS

    def get_queryset(self):
        return template_list(user=self.request.user)


class MailTemplateBulkView(SectionBulkView):
    permission_required = VIEW
    bulk_actions = BULK_ACTIONS
    list_url_name = "templates_app:list"

    def get_queryset(self):
        # Only templates the user may delete: other ids in the POST have no effect.
        return deletable_templates(user=self.request.user)


# --- one template ---------------------------------------------------------------------------


class TemplateMixin(SectionObjectMixin):
    """Loads the template from the URL, limited to those the user may see (else 404)."""

    list_url_name = "templates_app:list"
    list_title = LIST_TITLE

    def get_template(self) -> MailTemplate:
        try:
            return template_with_texts(user=self.request.user, pk=self.kwargs["pk"])
        except MailTemplate.DoesNotExist:
            raise Http404(_("No such template.")) from None

    def get_changeable_template(self) -> MailTemplate:
        template = self.get_template()
        if not TemplateRights(self.request.user).can_change(template):
            raise PermissionDenied(_("Only members of the template's group can change it."))
        return template


class MailTemplateFormView(TemplateMixin, SectionFormView):
    """Create (no pk) and edit (pk): one form with the texts per language."""

    template_name = "templates_app/form.html"

    add_permission = ADD
    change_permission = CHANGE

    def get_form(self, data=None):
        instance = self.get_changeable_template() if "pk" in self.kwargs else MailTemplate()
        return MailTemplateForm(
            data,
            instance=instance,
            user=self.request.user,
            cancel_url=reverse("templates_app:list"),
        )

    def render_form(self, form):
        title = (
            _("Edit template %(name)s") % {"name": form.instance.name}
            if form.instance.pk
            else _("New template")
        )
        return render(self.request, self.template_name, self.base_context(form=form, title=title))

    def create(self, form):
        return services.mail_template_create(
            values=form.service_values(), translations=form.translations()
        )

    def update(self, obj, form):
        services.mail_template_update(
            template=obj, values=form.service_values(), translations=form.translations()
        )

    def saved_redirect(self, obj):
        return redirect("templates_app:preview", pk=obj.pk)


class MailTemplateDuplicateView(TemplateMixin, SectionDuplicateView):
    permission_required = ADD
    update_url_name = "templates_app:update"

    def get_source(self):
        return self.get_template()

    def get_initial(self, source):
        return {"name": services.copy_name(source.name), "owner_group": source.owner_group_id}

    def get_form(self, source, *, data=None, initial=None):
        return DuplicateForm(
            data, user=self.request.user, initial=initial, cancel_url=reverse("templates_app:list")
        )

    def duplicate(self, source, form):
        return services.mail_template_duplicate(
            template=source,
            name=form.cleaned_data["name"],
            owner_group=form.cleaned_data["owner_group"],
        )


class MailTemplateDeleteView(TemplateMixin, SectionDeleteView):
    permission_required = DELETE
    question = gettext_lazy("Delete the template %(name)s? This cannot be undone.")

    def get_target(self) -> MailTemplate:
        template = self.get_template()
        if not TemplateRights(self.request.user).can_delete(template):
            raise PermissionDenied(_("Only members of the template's group can delete it."))
        return template

    def get_refusal(self, template):
        refusal = _bulk_delete_refusal(template)
        if refusal:
            refusal = _(
                "This template cannot be deleted while it is in use: %(reason)s Change those first."
            ) % {"reason": refusal}
        return refusal

    def delete(self, obj):
        services.mail_template_delete(template=obj)


# --- preview --------------------------------------------------------------------------------


@dataclass
class Preview:
    form: PreviewForm
    recipients: list[Recipient] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    member: int = 0
    rendered: services.RenderedMail | None = None
    error: str = ""

    @property
    def recipient(self) -> Recipient | None:
        return self.recipients[self.member] if self.recipients else None


def _preview_link(filename: str) -> str:
    return _("[download link for %(file)s, made when the mail is sent]") % {"file": filename}


def build_preview(request, template: MailTemplate, *, export: bool) -> Preview:
    """Render the template for the recipient chosen in the query string (?recipient=token
    &member=n&language=xx), as the render service will for a real mail."""
    form = PreviewForm(request.GET if "recipient" in request.GET else None, user=request.user)
    preview = Preview(form=form)
    if not form.is_bound or not form.is_valid():
        return preview
    token = form.cleaned_data["recipient"].strip()
    try:
        items = check_selection([token], user=request.user)
    except ValidationError as exc:
        form.add_error("recipient", exc)
        return preview
    resolution = resolve_selection(items)
    preview.recipients = resolution.recipients
    preview.skipped = resolution.skipped
    if not preview.recipients:
        form.add_error(
            "recipient",
            [
                _("%(label)s: %(reason)s") % {"label": s.label, "reason": s.reason}
                for s in resolution.skipped
            ]
            or _("This selection has no recipient."),
        )
        return preview
    preview.member = min(form.cleaned_data.get("member") or 0, len(preview.recipients) - 1)
    try:
        preview.rendered = services.render_for_recipient(
            template=template,
            recipient=preview.recipient,
            language=form.cleaned_data["language"] or None,
            link_builder=_preview_link,
            export=export,
        )
    except TemplateRenderError as exc:
        preview.error = str(exc)
    return preview


class MailTemplatePreviewView(TemplateMixin, View):
    permission_required = VIEW

    def get(self, request, pk):
        template = self.get_template()
        preview = build_preview(request, template, export=False)
        rights = TemplateRights(request.user)
        return render(
            request,
            "templates_app/preview.html",
            self.base_context(
                title=_("Preview: %(name)s") % {"name": template.name},
                template=template,
                preview=preview,
                query=request.GET.urlencode(),
                can_change=rights.can_change(template),
                languages=[obj.get_language_display() for obj in template.translations.all()],
            ),
        )


@method_decorator(xframe_options_sameorigin, name="dispatch")
class MailTemplatePreviewBodyView(TemplateMixin, View):
    """Only the rendered HTML body, sanitised, for the preview page's <iframe sandbox>."""

    permission_required = VIEW

    def get(self, request, pk):
        template = self.get_template()
        preview = build_preview(request, template, export=False)
        if preview.rendered is None or not preview.rendered.body_html:
            raise Http404(_("There is no HTML body to show."))
        return body_frame_response(title=preview.rendered.subject, html=preview.rendered.body_html)


class MailTemplatePreviewAttachmentView(TemplateMixin, View):
    """The attachment exactly as the mail to the chosen recipient would carry it."""

    permission_required = VIEW

    def get(self, request, pk):
        template = self.get_template()
        preview = build_preview(request, template, export=True)
        if preview.rendered is None or not preview.rendered.attachments:
            raise Http404(_("This mail would have no attachment."))
        attachment = preview.rendered.attachments[0]
        response = HttpResponse(attachment.content, content_type=attachment.content_type)
        response["Content-Disposition"] = f'attachment; filename="{attachment.filename}"'
        return protect_download(response)
