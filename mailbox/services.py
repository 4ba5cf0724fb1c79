"""Writes to the outbox. enqueue() is the one way a mail gets in."""

import mimetypes
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail.message import make_msgid
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from calmail.common.mailtypes import AttachmentSpec

if TYPE_CHECKING:
    # For the annotation only: the outbox stands below actions (docs/architecture.md).
    from actions.models import Action
from mailbox import mime
from mailbox.dispatch import dispatch_delivery
from mailbox.links import attachment_url
from mailbox.models import (
    AddressType,
    AttachmentType,
    OutboxAttachment,
    OutboxMessage,
    Source,
    Status,
)
from mailbox.transitions import InvalidTransition, delete_refusal, resend_refusal, transition
from maillog.services import log_outbox_action
from smtpconfig.models import SmtpConfiguration
from smtpconfig.selectors import smtp_configuration_default

# Said alike wherever a header value is checked (compose forms, enqueue).
HEADER_INJECTION_MESSAGE = gettext_lazy(
    "Line breaks are not allowed here (they could inject mail headers)."
)


def _check_no_line_breaks(field: str, value: str, errors: dict) -> None:
    if "\r" in value or "\n" in value:
        errors.setdefault(field, []).append(HEADER_INJECTION_MESSAGE)


def _clean_addresses(field: str, addresses: Iterable[str], errors: dict) -> list[str]:
    cleaned = []
    for address in addresses:
        address = (address or "").strip()
        if not address:
            continue
        if "\r" in address or "\n" in address:
            errors.setdefault(field, []).append(
                _("“%(address)s” contains a line break.")
                % {"address": address.replace("\r", "").replace("\n", "⏎")}
            )
            continue
        try:
            validate_email(address)
        except ValidationError:
            errors.setdefault(field, []).append(
                _("“%(address)s” is not a valid e-mail address.") % {"address": address}
            )
            continue
        cleaned.append(address)
    return cleaned


def _check_attachments(attachments: Sequence[AttachmentSpec], errors: dict) -> None:
    limit = settings.CALMAIL_ATTACHMENT_MAX_BYTES
    for attachment in attachments:
        if len(attachment.content) > limit:
            errors.setdefault("attachments", []).append(
                _("%(name)s is %(size)s MB; at most %(limit)s MB are allowed.")
                % {
                    "name": attachment.filename,
                    "size": f"{len(attachment.content) / 1_000_000:.1f}",
                    "limit": f"{limit / 1_000_000:.0f}",
                }
            )
        if not attachment.filename or "/" in attachment.filename or "\\" in attachment.filename:
            errors.setdefault("attachments", []).append(
                _("“%(name)s” is not a valid file name.") % {"name": attachment.filename}
            )


@transaction.atomic
def enqueue(
    *,
    to: Sequence[str],
    subject: str,
    body_text: str = "",
    body_html: str = "",
    from_email: str = "",
    from_name: str = "",
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    reply_to: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    attachments: Sequence[AttachmentSpec] = (),
    attachment_type: str = AttachmentType.FILE,
    smtp_configuration: SmtpConfiguration | None = None,
    source: str = Source.SYSTEM,
    source_label: str = "",
    address_type: str = AddressType.ADDRESS,
    recipient_owner: str = "",
    export_type: str = "",
    parameters: dict | None = None,
    scheduled_at: datetime | None = None,
    idempotency_key: str | None = None,
    owner_group: Group | None = None,
    created_by: User | None = None,
    action: "Action | None" = None,
) -> OutboxMessage:
    """Validate a mail, store it with its attachments and have it delivered after commit.

    Raises ValidationError with one message per bad field (each bad address named).
    With an idempotency_key that is already stored, returns that mail unchanged.
    """
    if idempotency_key:
        existing = OutboxMessage.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing

    errors: dict[str, list[str]] = {}
    configuration = smtp_configuration or smtp_configuration_default()
    if configuration is None:
        errors["smtp_configuration"] = [_("There is no SMTP configuration to send through.")]
    from_email = (
        from_email
        or (configuration.from_email if configuration else "")
        or settings.DEFAULT_FROM_EMAIL
    ).strip()
    [from_email] = _clean_addresses("from_email", [from_email], errors) or [from_email]
    to = _clean_addresses("to", to, errors)
    cc = _clean_addresses("cc", cc, errors)
    bcc = _clean_addresses("bcc", bcc, errors)
    reply_to = _clean_addresses("reply_to", reply_to, errors)
    if not (to or cc or bcc) and "to" not in errors:
        errors["to"] = [_("Enter at least one recipient.")]
    if not subject.strip():
        errors["subject"] = [_("Enter a subject.")]
    _check_no_line_breaks("subject", subject, errors)
    _check_no_line_breaks("from_name", from_name, errors)
    for name, value in (headers or {}).items():
        _check_no_line_breaks("headers", f"{name}{value}", errors)
    _check_attachments(attachments, errors)
    if attachment_type not in AttachmentType.values:
        errors["attachment_type"] = [_("Unknown attachment type.")]
    if errors:
        raise ValidationError(errors)

    now = timezone.now()
    future = scheduled_at is not None and scheduled_at > now
    message = OutboxMessage(
        source=source,
        source_label=source_label,
        recipient=", ".join(to or cc or bcc)[:1000],
        recipient_owner=recipient_owner,
        address_type=address_type,
        attachment_count=len(attachments),
        export_type=export_type,
        parameters=parameters or {},
        attachment_type=attachment_type,
        exported_attachments=sum(1 for a in attachments if a.exported),
        status=Status.SCHEDULED if future else Status.QUEUED,
        from_email=from_email,
        from_name=from_name,
        to=to,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
        subject=subject,
        body_text=body_text,
        body_html=body_html,
        headers=headers or {},
        message_id=make_msgid(domain=from_email.rpartition("@")[2] or None),
        smtp_configuration=configuration,
        scheduled_at=scheduled_at,
        next_attempt_at=scheduled_at if future else now,
        idempotency_key=idempotency_key or None,
        owner_group=owner_group,
        created_by=created_by,
        action=action,
    )
    if not attachments:
        message.raw_message = mime.prebuilt(message)
    try:
        # A savepoint: a concurrent enqueue with the same key makes this insert fail alone.
        with transaction.atomic():
            message.save()
    except IntegrityError:
        if idempotency_key:
            existing = OutboxMessage.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        raise
    stored = [_store_attachment(message, spec, now) for spec in attachments]
    if attachment_type == AttachmentType.LINK and stored:
        _add_download_links(message, stored)
    if not future and configuration is not None:
        _nudge_on_commit(configuration.pk)
    return message


def _store_attachment(message: OutboxMessage, spec: AttachmentSpec, now) -> OutboxAttachment:
    content_type = (
        spec.content_type or mimetypes.guess_type(spec.filename)[0] or "application/octet-stream"
    )
    attachment = OutboxAttachment(
        message=message,
        filename=spec.filename,
        content_type=content_type,
        size=len(spec.content),
        exported=spec.exported,
        created_at=now,
    )
    attachment.file.save(spec.filename, ContentFile(spec.content), save=False)
    attachment.save()
    return attachment


def _add_download_links(message: OutboxMessage, attachments: list[OutboxAttachment]) -> None:
    """Attachment type "link": the files stay here; the mail carries signed, expiring URLs."""
    links = [(attachment.filename, attachment_url(attachment)) for attachment in attachments]
    heading = _("Downloads (valid for %(days)s days):") % {"days": settings.CALMAIL_LINK_TTL_DAYS}
    text_block = "\n".join([heading, *[f"- {name}: {url}" for name, url in links]])
    message.body_text = (
        f"{message.body_text.rstrip()}\n\n{text_block}\n"
        if message.body_text
        else text_block + "\n"
    )
    if message.body_html:
        items = "".join(
            format_html('<li><a href="{}">{}</a></li>', url, name) for name, url in links
        )
        message.body_html += format_html("<p>{}</p><ul>{}</ul>", heading, mark_safe(items))  # noqa: S308
    # The links are part of the content: only now can the mail be built.
    message.raw_message = mime.prebuilt(message)
    message.save(update_fields=["body_text", "body_html", "raw_message"])


class _DeliveryNudge:
    """The after-commit callback that dispatches delivery for one configuration."""

    def __init__(self, configuration_id: int):
        self.configuration_id = configuration_id

    def __call__(self) -> None:
        dispatch_delivery(configuration_id=self.configuration_id)


def _nudge_on_commit(configuration_id: int) -> None:
    """Dispatch delivery after commit, once per configuration and transaction: a mail
    action enqueueing 20,000 mails publishes one task, not 20,000 (the engine drains the
    backlog and fans out to free connection slots). A rolled-back savepoint drops its
    callbacks, which is why this looks at the ones still registered."""
    registered = transaction.get_connection().run_on_commit
    for _savepoints, callback, _robust in registered:
        if isinstance(callback, _DeliveryNudge) and callback.configuration_id == configuration_id:
            return
    transaction.on_commit(_DeliveryNudge(configuration_id))


def message_resend(*, message: OutboxMessage) -> None:
    """A sent, failed or cancelled mail goes back to queued as a new delivery cycle."""
    refusal = resend_refusal(message)
    if refusal is not None:
        raise InvalidTransition(refusal, code="invalid_transition")
    now = timezone.now()
    transition(
        message,
        Status.QUEUED,
        attempt_count=0,
        next_attempt_at=now,
        error_message="",
        sent_at=None,
        lease_expires_at=None,
        claimed_by="",
    )
    log_outbox_action(message=message, action="resend")
    _nudge_on_commit(message.smtp_configuration_id)


def message_cancel(*, message: OutboxMessage) -> None:
    """Scheduled, queued or deferred mail is not sent."""
    transition(message, Status.CANCELLED, next_attempt_at=None)
    log_outbox_action(message=message, action="cancel")


def _delete_files(files) -> None:
    for file in files:
        if file.name:
            file.storage.delete(file.name)


def message_delete(*, message: OutboxMessage) -> None:
    """Delete a mail with its attachment files; one being sent right now is refused."""
    refusal = delete_refusal(message)
    if refusal is not None:
        raise InvalidTransition(refusal)
    files = [attachment.file for attachment in message.attachments.all()]
    log_outbox_action(message=message, action="delete")
    message.delete()
    # Remove files only once the rows are surely gone.
    transaction.on_commit(lambda: _delete_files(files))
