"""An outbox row as a MIME message, and the bytes that go to the server.

Python's email package needs about 0.4 ms to build and serialise a mail (most of it
folding headers), which would make building the most expensive step of sending one. So
``enqueue()`` builds each mail once and stores the bytes in
``OutboxMessage.raw_message``; the delivery engine hands them to the server as they are,
on the first attempt and on every retry or resend. The Message-ID and Date inside are
fixed at that moment, which is what a mail's origination date means.

The exception are mails with file attachments: their files stay in storage (so the row
stays small) and are read and attached when the mail is sent, with ``build_email``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime
from email.utils import formataddr, formatdate

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.translation import gettext as _

from mailbox.models import AttachmentType, OutboxAttachment, OutboxMessage
from smtpconfig.transport import bare_address


class UnbuildableMessage(Exception):
    """The row cannot be turned into a mail (e.g. its attachment file is gone)."""


def build_email(
    message: OutboxMessage,
    *,
    attachments: Iterable[OutboxAttachment] = (),
    date: datetime | None = None,
) -> EmailMultiAlternatives:
    """The MIME message for an outbox row. Its Message-ID is the row's, so every attempt
    (a retry, a resend, a duplicate after a crash) carries the same one.

    ``attachments`` are attached as files unless the mail sends links (attachment type
    "link"): then the signed URLs are already in the body. ``date`` sets the Date header
    (default: when the message is built)."""
    sender = (
        formataddr((message.from_name, message.from_email))
        if message.from_name
        else message.from_email
    )
    headers = {**message.headers, "Message-ID": message.message_id}
    if date is not None:
        headers.setdefault(
            "Date", formatdate(date.timestamp(), localtime=settings.EMAIL_USE_LOCALTIME)
        )
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.body_text,
        from_email=sender,
        to=list(message.to),
        cc=list(message.cc),
        bcc=list(message.bcc),
        reply_to=list(message.reply_to),
        headers=headers,
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    if message.attachment_type == AttachmentType.FILE:
        for attachment in attachments:
            try:
                with attachment.file.storage.open(attachment.file.name, "rb") as handle:
                    content = handle.read()
            except OSError as exc:
                raise UnbuildableMessage(
                    _("The attachment %(name)s cannot be read: %(reason)s")
                    % {"name": attachment.filename, "reason": exc.strerror or exc}
                ) from exc
            email.attach(attachment.filename, content, attachment.content_type)
    return email


def render(email: EmailMultiAlternatives) -> bytes:
    """The message as it goes on the wire (CRLF line ends), like Django's SMTP backend
    serialises it; Bcc is not among the headers."""
    mime = email.message()
    for part in mime.walk():
        if part.is_multipart():
            # A random boundary of our own spares the generator searching the body for a
            # collision with one it made up (a regular expression per mail).
            part.set_boundary(f"=_calmail_{secrets.token_hex(16)}")
    return mime.as_bytes(linesep="\r\n")


def attaches_files(message: OutboxMessage) -> bool:
    """Whether the mail carries files from storage (read when it is sent)."""
    return message.attachment_type == AttachmentType.FILE and message.attachment_count > 0


def prebuilt(message: OutboxMessage) -> bytes:
    """What enqueue() stores in raw_message: the whole mail, or b"" for a mail with file
    attachments. Dated when it is planned for, else now."""
    if attaches_files(message):
        return b""
    return render(build_email(message, date=message.scheduled_at or datetime.now().astimezone()))


def as_sent(message: OutboxMessage) -> bytes:
    """The mail as it goes to the server: the bytes enqueue() built, or for a mail with
    file attachments the same build the engine makes when it sends it.
    Raises UnbuildableMessage when an attachment file is gone."""
    data = bytes(message.raw_message)
    if data:
        return data
    attachments = message.attachments.order_by("id") if attaches_files(message) else ()
    return render(build_email(message, attachments=attachments))


def envelope(message: OutboxMessage) -> tuple[str, list[str]]:
    """The SMTP envelope: the bare sender address and every recipient (To, Cc, Bcc)."""
    encoding = settings.DEFAULT_CHARSET
    recipients = [*message.to, *message.cc, *message.bcc]
    return (
        bare_address(message.from_email, encoding),
        [bare_address(address, encoding) for address in recipients if address],
    )
