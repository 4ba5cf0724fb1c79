from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.decorators import method_decorator
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.decorators.clickjacking import xframe_options_sameorigin

from calmail.common.lists import BulkAction, BulkActionView, BulkResult, CalmailListView
from inventory.recipients import Recipient, Skipped, check_selection, resolve_selection

# The outbox's sanitiser and frame policies: a template preview is shown exactly like a
# stored mail's body.
from mailbox.views import BODY_FRAME_POLICY, DOWNLOAD_POLICY, sanitise_body_html
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


def _add_service_errors(form, exc: ValidationError) -> None:
    """A service's ValidationError onto the form: each message on its field if it has one."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        form.add_error(name if name in form.fields else None, errors)


# --- list and bulk delete -------------------------------------------------------------------


def _bulk_delete_refusal(template):
    users = services.template_usages(template)
    if users:
        return _("it is used by: %(users)s.") % {"users": ", ".join(users[:10])}
    return None


def _bulk_delete(objects, user):
    done, refused = 0, []
    for template in objects:
        try:
            services.mail_template_delete(template=template)
        except ValidationError as exc:
            refused.append((template, " ".join(exc.messages)))
        else:
            done += 1
    return BulkResult(done=done, refused=refused)


BULK_ACTIONS = {
    "delete": BulkAction(
        label=gettext_lazy("Delete"),
        permission=DELETE,
        run=_bulk_delete,
        refusal=_bulk_delete_refusal,
        danger=True,
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
    create_permission = ADD
    bulk_url_name = "templates_app:bulk"
    bulk_actions = BULK_ACTIONS

    def get_queryset(self):
        return template_list(user=self.request.user)


class MailTemplateBulkView(PermissionRequiredMixin, BulkActionView):
    permission_required = VIEW
    raise_exception = True
    bulk_actions = BULK_ACTIONS
    list_url_name = "templates_app:list"

    def get_queryset(self):
        # Only templates the user may delete: other ids in the POST have no effect.
        return deletable_templates(user=self.request.user)


# --- one template ---------------------------------------------------------------------------


class TemplateMixin(PermissionRequiredMixin):
    """Loads the template from the URL, limited to those the user may see (else 404)."""

    raise_exception = True

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

    def base_context(self, **extra):
        return {"list_url": reverse("templates_app:list"), "list_title": LIST_TITLE, **extra}


class MailTemplateFormView(TemplateMixin, View):
    """Create (no pk) and edit (pk): one form with the texts per language."""

    template_name = "templates_app/form.html"

    def get_permission_required(self):
        return (CHANGE,) if "pk" in self.kwargs else (ADD,)

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

    def get(self, request, **kwargs):
        return self.render_form(self.get_form())

    def post(self, request, **kwargs):
        form = self.get_form(request.POST)
        if not form.is_valid():
            return self.render_form(form)
        try:
            if form.instance.pk:
                template = form.instance
                # The form wrote the cleaned values onto its instance; reload so the
                # service compares with what is stored.
                template.refresh_from_db()
                services.mail_template_update(
                    template=template,
                    values=form.service_values(),
                    translations=form.translations(),
                )
                messages.success(request, _("%(name)s saved.") % {"name": template.name})
            else:
                template = services.mail_template_create(
                    values=form.service_values(), translations=form.translations()
                )
                messages.success(request, _("%(name)s created.") % {"name": template.name})
        except ValidationError as exc:
            _add_service_errors(form, exc)
            return self.render_form(form)
        return redirect("templates_app:preview", pk=template.pk)


class MailTemplateDuplicateView(TemplateMixin, View):
    permission_required = ADD

    def get_form(self, template, data=None):
        return DuplicateForm(
            data,
            user=self.request.user,
            initial={
                "name": services.copy_name(template.name),
                "owner_group": template.owner_group_id,
            },
            cancel_url=reverse("templates_app:list"),
        )

    def render_form(self, template, form):
        title = _("Duplicate %(name)s") % {"name": template.name}
        return render(self.request, "common/form.html", self.base_context(form=form, title=title))

    def get(self, request, pk):
        template = self.get_template()
        return self.render_form(template, self.get_form(template))

    def post(self, request, pk):
        template = self.get_template()
        form = self.get_form(template, request.POST)
        if form.is_valid():
            try:
                copy = services.mail_template_duplicate(
                    template=template,
                    name=form.cleaned_data["name"],
                    owner_group=form.cleaned_data["owner_group"],
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, _("%(name)s created as a copy.") % {"name": copy.name})
                return redirect("templates_app:update", pk=copy.pk)
        return self.render_form(template, form)


class MailTemplateDeleteView(TemplateMixin, View):
    permission_required = DELETE

    def get_deletable_template(self) -> MailTemplate:
        template = self.get_template()
        if not TemplateRights(self.request.user).can_delete(template):
            raise PermissionDenied(_("Only members of the template's group can delete it."))
        return template

    def render_page(self, template, refusal=None):
        return render(
            self.request,
            "common/confirm.html",
            self.base_context(
                title=_("Delete %(name)s") % {"name": template.name},
                question=_("Delete the template %(name)s? This cannot be undone.")
                % {"name": template.name},
                refusal=refusal,
                blocked=bool(refusal),
                danger=True,
                confirm_label=_("Delete"),
                cancel_url=reverse("templates_app:list"),
            ),
        )

    def get(self, request, pk):
        template = self.get_deletable_template()
        refusal = _bulk_delete_refusal(template)
        if refusal:
            refusal = _(
                "This template cannot be deleted while it is in use: %(reason)s Change those first."
            ) % {"reason": refusal}
        return self.render_page(template, refusal)

    def post(self, request, pk):
        template = self.get_deletable_template()
        name = template.name
        try:
            services.mail_template_delete(template=template)
        except ValidationError as exc:
            return self.render_page(template, refusal=" ".join(exc.messages))
        messages.success(request, _("%(name)s deleted.") % {"name": name})
        return redirect("templates_app:list")


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
    form = PreviewForm(request.GET if "recipient" in request.GET else None)
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
        content = render_to_string(
            "mailbox/body_frame.html",
            {
                "title": preview.rendered.subject,
                "body": mark_safe(sanitise_body_html(preview.rendered.body_html)),  # noqa: S308 (sanitised by nh3)
            },
        )
        response = HttpResponse(content, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = BODY_FRAME_POLICY
        response["X-Content-Type-Options"] = "nosniff"
        patch_cache_control(response, private=True, no_store=True)
        return response


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
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = DOWNLOAD_POLICY
        patch_cache_control(response, private=True, no_store=True)
        return response
