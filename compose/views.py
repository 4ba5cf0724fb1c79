"""Compose pages: the form (new mail or a draft), the drafts, the preview and sending."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.generic import ListView

from calmail.common.forms import add_service_errors
from calmail.common.html import body_frame_response, sanitise_body_html
from compose import selectors, services
from compose.forms import ComposeForm, initial_for_new, initial_from_draft
from compose.models import Draft
from inventory.recipients import resolve_selection
from mailbox.models import Source
from templates_app.rendering import TemplateRenderError

PERMISSION = "compose.send_mail"


class ComposeMixin(PermissionRequiredMixin):
    permission_required = PERMISSION

    def get_draft(self) -> Draft | None:
        pk = self.kwargs.get("pk")
        return None if pk is None else selectors.draft_get(user=self.request.user, pk=pk)


@method_decorator(never_cache, name="dispatch")
class ComposeView(ComposeMixin, View):
    """New mail (no pk) or a draft. Every submission is kept in the draft first, so a
    validation error never loses what was typed or uploaded."""

    template_name = "compose/compose.html"

    def render_form(self, form, draft, status=200):
        context = {
            "form": form,
            "draft": draft,
            "title": _("Edit draft") if draft else _("Compose"),
            "form_action": reverse("compose:draft", args=[draft.pk])
            if draft
            else reverse("compose:new"),
            "drafts_url": reverse("compose:drafts"),
        }
        return render(self.request, self.template_name, context, status=status)

    def get(self, request, pk=None):
        draft = self.get_draft()
        if draft is None:
            form = ComposeForm(initial=initial_for_new(user=request.user), user=request.user)
        else:
            form = ComposeForm(initial=initial_from_draft(draft), user=request.user, draft=draft)
        return self.render_form(form, draft)

    def post(self, request, pk=None):
        draft = self.get_draft()
        action = request.POST.get("action", "save")
        form = ComposeForm(
            request.POST,
            request.FILES,
            user=request.user,
            draft=draft,
            strict=action == "preview",
        )
        valid = form.is_valid()
        draft = services.draft_save(owner=request.user, draft=draft, values=form.draft_values())
        services.draft_remove_attachments(
            draft=draft, ids=form.cleaned_data.get("remove_attachments") or []
        )
        for upload in form.accepted_files:
            services.draft_add_attachment(
                draft=draft,
                filename=upload.name,
                content=upload.read(),
                content_type=upload.content_type or "",
            )
        if not valid:
            # Show the form again, on the draft: the stored files are listed now.
            return self.render_form(self.redisplay(form, draft), draft, status=400)
        if action == "template":
            return self.apply_template(form, draft)
        if action == "preview":
            return redirect("compose:preview", pk=draft.pk)
        messages.success(request, _("The draft was saved."))
        return redirect("compose:draft", pk=draft.pk)

    def redisplay(self, form, draft, **errors):
        """The submitted form checked again on the draft as stored now (its files listed),
        with the refusals of uploaded files and any further errors (field=message)."""
        data = form.data.copy()
        # The files to remove are gone already.
        data.setlist("remove_attachments", [])
        stored = Draft.objects.get(pk=draft.pk)
        # The sender as stored: it may have followed a change of configuration.
        data["from_email"] = stored.from_email
        fresh = ComposeForm(data, user=self.request.user, draft=stored, strict=form.strict)
        fresh.is_valid()
        for error in form.errors.get("new_files", []):
            fresh.add_error("new_files", error)
        for field, message in errors.items():
            fresh.add_error(field, message)
        return fresh

    def apply_template(self, form, draft):
        template = form.cleaned_data.get("template")
        if template is None:
            fresh = self.redisplay(form, draft, template=_("Choose a template to fill in."))
            return self.render_form(fresh, draft, status=400)
        tokens = form.cleaned_data.get("template_recipient") or form.cleaned_data.get("to")[:1]
        try:
            recipients = resolve_selection(tokens[:1]).recipients if tokens else []
        except ValidationError as exc:
            # A typed To recipient that is no address: saving keeps it, filling in cannot.
            fresh = self.redisplay(form, draft, to=exc)
            return self.render_form(fresh, draft, status=400)
        if not recipients:
            message = _("Choose a recipient (or enter a To recipient) to fill the template for.")
            fresh = self.redisplay(form, draft, template_recipient=message)
            return self.render_form(fresh, draft, status=400)
        try:
            notes = services.draft_apply_template(
                draft=draft, template=template, recipient=recipients[0]
            )
        except TemplateRenderError as exc:
            fresh = self.redisplay(form, draft, template=str(exc))
            return self.render_form(fresh, draft, status=400)
        messages.success(
            request=self.request,
            message=_("The template “%(name)s” was filled in for %(recipient)s.")
            % {"name": template.name, "recipient": recipients[0].email},
        )
        for note in notes:
            messages.warning(self.request, note)
        return redirect("compose:draft", pk=draft.pk)


class DraftListView(ComposeMixin, ListView):
    template_name = "compose/draft_list.html"
    context_object_name = "drafts"
    paginate_by = 50

    def get_queryset(self):
        return selectors.draft_list(user=self.request.user).prefetch_related("attachments")

    def get_context_data(self, **kwargs):
        return super().get_context_data(title=_("Drafts"), **kwargs)


def _checked(request, draft):
    """The draft as the strict form sees it: (form, plan) with plan None when invalid."""
    form = ComposeForm(initial_from_draft(draft), user=request.user, draft=draft, strict=True)
    if not form.is_valid():
        return form, None
    try:
        plan = services.plan_mails(to=draft.to, cc=draft.cc, bcc=draft.bcc, mode=draft.send_mode)
    except ValidationError as exc:
        add_service_errors(form, exc)
        return form, None
    return form, plan


def _form_with_errors(request, form, draft):
    return render(
        request,
        ComposeView.template_name,
        {
            "form": form,
            "draft": draft,
            "title": _("Edit draft"),
            "form_action": reverse("compose:draft", args=[draft.pk]),
            "drafts_url": reverse("compose:drafts"),
        },
        status=400,
    )


@method_decorator(never_cache, name="dispatch")
class PreviewView(ComposeMixin, View):
    """The mails as they will be created: recipients per mail (lists expanded), sender,
    subject, the sanitised text and the attachments with their sizes."""

    def get(self, request, pk):
        draft = self.get_draft()
        form, plan = _checked(request, draft)
        if plan is None:
            return _form_with_errors(request, form, draft)
        configuration = draft.smtp_configuration
        from django.conf import settings

        context = {
            "title": _("Preview"),
            "draft": draft,
            "plan": plan,
            "from_email": draft.from_email
            or configuration.from_email
            or settings.DEFAULT_FROM_EMAIL,
            "body_text": services.body_text_for(sanitise_body_html(draft.body_html)),
            "attachments": list(draft.attachments.all()),
            "drafts_url": reverse("compose:drafts"),
        }
        return render(request, "compose/preview.html", context)


@method_decorator(xframe_options_sameorigin, name="dispatch")
class DraftBodyView(ComposeMixin, View):
    """The draft's sanitised HTML alone, for the preview's <iframe sandbox>."""

    def get(self, request, pk):
        draft = self.get_draft()
        if not draft.body_html.strip():
            raise Http404(_("This mail has no text yet."))
        return body_frame_response(title=draft.subject, html=draft.body_html)


class SendView(ComposeMixin, View):
    def post(self, request, pk):
        draft = self.get_draft()
        form, plan = _checked(request, draft)
        if plan is None:
            return _form_with_errors(request, form, draft)
        try:
            batch, mails = services.draft_send(draft=draft, user=request.user, plan=plan)
        except ValidationError as exc:
            add_service_errors(form, exc)
            return _form_with_errors(request, form, draft)
        messages.success(
            request,
            _("%(count)s mail(s) are in the outbox.") % {"count": len(mails)},
        )
        query = urlencode({"source": Source.COMPOSE, "parameters": batch})
        return redirect(f"{reverse('mailbox:list')}?{query}")


class DeleteView(ComposeMixin, View):
    def post(self, request, pk):
        draft = self.get_draft()
        services.draft_delete(draft=draft)
        messages.success(request, _("The draft was deleted."))
        return redirect("compose:drafts")
