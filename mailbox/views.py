import logging
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views import View
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.generic import DetailView
from django_tables2.paginators import LazyPaginator

from calmail.common.html import body_frame_response, protect_download
from calmail.common.lists import BulkAction, CalmailListView
from calmail.common.sections import SectionBulkView, SectionObjectMixin, bulk_result
from mailbox import mime, services
from mailbox.filters import DeliveryAttemptFilter, OutboxFilter
from mailbox.links import attachment_uuid_from_token
from mailbox.models import OutboxAttachment, OutboxMessage
from mailbox.selectors import (
    ATTEMPTS_PERMISSION,
    VIEW_PERMISSION,
    delivery_attempt_list,
    outbox_attachment_visible,
    outbox_link_attachment,
    outbox_message_detail,
    outbox_message_list,
)
from mailbox.tables import DeliveryAttemptTable, OutboxTable, message_actions, status_badge
from mailbox.transitions import (
    InvalidTransition,
    cancel_refusal,
    delete_refusal,
    resend_refusal,
)
from maillog.tabs import LogTabsMixin

logger = logging.getLogger(__name__)

LIST_TITLE = gettext_lazy("Outbox")
ATTEMPTS_TITLE = gettext_lazy("Delivery attempts")

# The list never needs the (possibly large) bodies.
# The list never shows these; raw_message alone is a few KB a row.
LIST_DEFERRED = ("body_text", "body_html", "headers", "raw_message")


# --- actions: the work (the refusals are mailbox.transitions') ------------------------------


def _bulk_runner(service, refusal, verb: str):
    def run(objects, user):
        # One transaction for the batch; each row is still decided on its own, and one
        # that changed meanwhile is refused by the conditional update, not overwritten.
        with transaction.atomic():
            result = bulk_result(
                objects,
                perform=lambda message: service(message=message),
                refusal=refusal,
                errors=(InvalidTransition,),
            )
        logger.info(
            "%s: %s mail(s) by %s, %s left out",
            verb,
            result.done,
            user.get_username(),
            len(result.refused),
        )
        return result

    return run


BULK_ACTIONS = {
    "resend": BulkAction(
        label=gettext_lazy("Resend"),
        permission="mailbox.resend_outboxmessage",
        run=_bulk_runner(services.message_resend, resend_refusal, "Resend"),
        refusal=resend_refusal,
        done_message=ngettext_lazy(
            "%(count)d mail queued to be sent again.",
            "%(count)d mails queued to be sent again.",
            "count",
        ),
    ),
    "cancel": BulkAction(
        label=gettext_lazy("Cancel sending"),
        permission="mailbox.cancel_outboxmessage",
        run=_bulk_runner(services.message_cancel, cancel_refusal, "Cancel"),
        refusal=cancel_refusal,
        done_message=ngettext_lazy(
            "%(count)d mail cancelled.", "%(count)d mails cancelled.", "count"
        ),
    ),
    "delete": BulkAction(
        label=gettext_lazy("Delete"),
        permission="mailbox.delete_outboxmessage",
        run=_bulk_runner(services.message_delete, delete_refusal, "Delete"),
        refusal=delete_refusal,
        danger=True,
        done_message=ngettext_lazy("%(count)d mail deleted.", "%(count)d mails deleted.", "count"),
    ),
}


# --- list ---------------------------------------------------------------------------------


class OutboxListView(CalmailListView):
    permission_required = VIEW_PERMISSION
    model = OutboxMessage
    table_class = OutboxTable
    filterset_class = OutboxFilter
    title = LIST_TITLE
    export_name = "outbox"
    bulk_url_name = "mailbox:bulk"
    bulk_actions = BULK_ACTIONS
    # A million rows: knowing whether a next page exists is enough, a COUNT(*) is not cheap.
    paginator_class = LazyPaginator

    def get_queryset(self):
        return outbox_message_list(user=self.request.user).defer(*LIST_DEFERRED)


class OutboxBulkView(SectionBulkView):
    permission_required = VIEW_PERMISSION
    bulk_actions = BULK_ACTIONS
    list_url_name = "mailbox:list"

    def get_queryset(self):
        return outbox_message_list(user=self.request.user).defer(*LIST_DEFERRED)


class DeliveryAttemptListView(LogTabsMixin, CalmailListView):
    """Every delivery attempt of the visible mails, a tab of the Log (/log/attempts/)."""

    permission_required = ATTEMPTS_PERMISSION
    table_class = DeliveryAttemptTable
    filterset_class = DeliveryAttemptFilter
    title = ATTEMPTS_TITLE
    export_name = "delivery-attempts"
    tab = "attempts"

    def get_queryset(self):
        return (
            delivery_attempt_list(user=self.request.user)
            .select_related("smtp_configuration", "message")
            .only(
                "started_at",
                "duration_ms",
                "worker",
                "outcome",
                "reply_code",
                "reply_text",
                "message__subject",
                "message__recipient",
                "smtp_configuration__name",
            )
        )


# --- one mail -----------------------------------------------------------------------------


class MessageMixin(SectionObjectMixin):
    """Loads the mail from the URL, limited to what the user may see (else 404)."""

    permission_required = VIEW_PERMISSION
    list_url_name = "mailbox:list"
    list_title = LIST_TITLE

    def get_message(self, queryset=None) -> OutboxMessage:
        if queryset is None:
            queryset = outbox_message_list(user=self.request.user)
        return self.object_from_url(queryset)


class OutboxDetailView(MessageMixin, DetailView):
    template_name = "mailbox/detail.html"
    context_object_name = "message"

    def get_object(self, queryset=None):
        return self.get_message(outbox_message_detail(user=self.request.user))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        message = self.object
        context.update(
            self.base_context(
                title=message.subject,
                status_badge=status_badge(message),
                actions=message_actions(message, self.request.user),
                attachments=list(message.attachments.all()),
                attempts=list(message.attempts.all()),
                sender=(
                    f"{message.from_name} <{message.from_email}>"
                    if message.from_name
                    else message.from_email
                ),
                extra_headers=sorted((message.headers or {}).items()),
                content_retention_days=settings.CALMAIL_OUTBOX_RETENTION_DAYS,
                raw_reproducible=mime.reproducible(message),
            )
        )
        return context


# --- the HTML body, sanitised, for a sandboxed frame ---------------------------------------


@method_decorator(xframe_options_sameorigin, name="dispatch")
class OutboxBodyView(MessageMixin, View):
    """Only the sanitised HTML body, for the detail page's <iframe sandbox>."""

    def get(self, request, pk):
        message = self.get_message(
            outbox_message_list(user=request.user).only("pk", "subject", "body_html")
        )
        if not message.body_html:
            raise Http404(_("This mail has no HTML part."))
        return body_frame_response(title=message.subject, html=message.body_html)


# --- the whole mail as sent ------------------------------------------------------------------


class OutboxRawView(MessageMixin, View):
    """The mail exactly as the server gets it, as an .eml file: for checking headers,
    encodings and attachments in a mail program. Bcc is not in it (envelope only)."""

    def get(self, request, pk):
        message = self.get_message()
        if message.content_purged_at is not None:
            # Rebuilt from the emptied bodies it would not be the mail that was sent.
            messages.error(
                request, _("The content of this mail was deleted after the retention period.")
            )
            return redirect("mailbox:detail", pk=message.pk)
        if not mime.reproducible(message):
            # Built again now, its Date and boundaries would differ from what was sent.
            messages.error(
                request,
                _(
                    "This mail was queued before its attachments could be rebuilt exactly; "
                    "it cannot be downloaded as sent."
                ),
            )
            return redirect("mailbox:detail", pk=message.pk)
        try:
            data = mime.as_sent(message)
        except mime.UnbuildableMessage as exc:
            # Back to the mail, saying which file is missing (a bare 404 would not).
            messages.error(request, str(exc))
            return redirect("mailbox:detail", pk=message.pk)
        response = HttpResponse(data, content_type="message/rfc822")
        response["Content-Disposition"] = f'attachment; filename="mail-{message.pk}.eml"'
        return protect_download(response)


# --- attachments ---------------------------------------------------------------------------


def _file_response(attachment: OutboxAttachment) -> FileResponse:
    try:
        handle = attachment.file.open("rb")
    except (FileNotFoundError, ValueError) as exc:
        logger.warning("Attachment %s: file missing from storage", attachment.pk)
        raise Http404(_("The file is no longer stored.")) from exc
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.filename,
        content_type=attachment.content_type or "application/octet-stream",
    )
    return protect_download(response)


class OutboxAttachmentView(PermissionRequiredMixin, View):
    """An attachment of a mail the user may see, for people signed in to calmail."""

    permission_required = VIEW_PERMISSION
    raise_exception = True

    def get(self, request, pk, uuid):
        attachment = get_object_or_404(
            outbox_attachment_visible(user=request.user, message_id=pk, uuid=uuid)
        )
        return _file_response(attachment)


@method_decorator(login_not_required, name="dispatch")
class AttachmentLinkView(View):
    """The signed, expiring link a recipient of a "link" mail downloads a file with."""

    http_method_names = ["get", "head"]

    def get(self, request, token):
        try:
            value = attachment_uuid_from_token(token)
        except signing.SignatureExpired:
            return render(
                request,
                "mailbox/link_expired.html",
                {"title": _("Link expired"), "link_days": settings.CALMAIL_LINK_TTL_DAYS},
                status=410,
            )
        except signing.BadSignature as exc:
            raise Http404 from exc
        try:
            attachment_uuid = uuid.UUID(value)
        except ValueError as exc:
            raise Http404 from exc
        attachment = outbox_link_attachment(uuid=attachment_uuid)
        if attachment is None:
            raise Http404
        response = _file_response(attachment)
        if request.method == "GET":
            _record_download(attachment)
        return response


def _record_download(attachment: OutboxAttachment) -> None:
    # One UPDATE with F(): concurrent downloads each count, none overwrites another.
    OutboxAttachment.objects.filter(pk=attachment.pk).update(
        download_count=F("download_count") + 1, last_downloaded_at=timezone.now()
    )


# --- one action on one mail ------------------------------------------------------------------

ACTION_QUESTIONS = {
    "resend": gettext_lazy("Send the mail “%(subject)s” to %(recipient)s again?"),
    "cancel": gettext_lazy("Cancel the mail “%(subject)s” to %(recipient)s? It will not be sent."),
    "delete": gettext_lazy(
        "Delete the mail “%(subject)s” to %(recipient)s with its attachments? "
        "This cannot be undone."
    ),
}
ACTION_DONE = {
    "resend": gettext_lazy("The mail is queued to be sent again."),
    "cancel": gettext_lazy("The mail was cancelled."),
    "delete": gettext_lazy("The mail was deleted."),
}
ACTION_SERVICES = {
    "resend": services.message_resend,
    "cancel": services.message_cancel,
    "delete": services.message_delete,
}


class OutboxActionView(MessageMixin, View):
    """Confirm page (GET) and the action (POST) for resend, cancel and delete of one mail."""

    action_name = ""

    def get_permission_required(self):
        return (BULK_ACTIONS[self.action_name].permission,)

    def render_page(self, message, refusal=None):
        action = BULK_ACTIONS[self.action_name]
        return self.render_confirm_page(
            title=_("%(action)s: %(subject)s")
            % {"action": action.label, "subject": message.subject},
            question=ACTION_QUESTIONS[self.action_name]
            % {"subject": message.subject, "recipient": message.recipient},
            refusal=refusal,
            blocked=refusal is not None,
            danger=action.danger,
            confirm_label=action.label,
            cancel_url=reverse("mailbox:detail", args=[message.pk]),
        )

    def get(self, request, pk):
        message = self.get_message(outbox_message_list(user=request.user).defer(*LIST_DEFERRED))
        return self.render_page(message, BULK_ACTIONS[self.action_name].refusal(message))

    def post(self, request, pk):
        message = self.get_message(outbox_message_list(user=request.user).defer(*LIST_DEFERRED))
        refusal = BULK_ACTIONS[self.action_name].refusal(message)
        if refusal is None:
            try:
                with transaction.atomic():
                    ACTION_SERVICES[self.action_name](message=message)
            except InvalidTransition as exc:
                refusal = " ".join(exc.messages)
        if refusal is not None:
            return self.render_page(message, refusal)
        logger.info(
            "%s of mail #%s by %s", self.action_name, message.pk, request.user.get_username()
        )
        messages.success(request, ACTION_DONE[self.action_name])
        if self.action_name == "delete":
            return redirect("mailbox:list")
        return redirect("mailbox:detail", pk=message.pk)
