"""An outbox row as a MIME message, and the bytes that go to the server.

Python's email package needs about 0.4 ms to build and serialise a mail (most of it
folding headers), which would make building the most expensive step of sending one. So
``enqueue()`` builds each mail once and stores the bytes in
``OutboxMessage.raw_message``; the delivery engine hands them to the server as they are,
on the first attempt and on every retry or resend. The Message-ID and Date inside are
fixed at that moment, which is what a mail's origination date means.

The exception are mails with file attachments: their files stay in storage (so the row
stays small) and are read and attached when the mail is sent, with ``build_email``. Their
build is made repeatable instead, so the .eml download is byte for byte what the server
got without keeping a second copy of every file in the database: the Date is fixed at
enqueue (in the row's extra headers) and the MIME boundaries derive from the Message-ID
(``render(…, seed=message_id)``). Rows queued before that carry no Date of their own
(``reproducible()`` is False): their download is refused rather than passed off.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from email.quoprimime import header_encode
from email.utils import formataddr, formatdate

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.translation import gettext_noop

from calmail.common.i18n import DeferredText
from mailbox.models import AttachmentType, OutboxAttachment, OutboxMessage
from smtpconfig.transport import bare_address


class UnbuildableMessage(Exception):
    """The row cannot be turned into a mail (e.g. its attachment file is gone)."""

    def __init__(self, text: DeferredText):
        super().__init__(text.render())
        # Stored with the mail, so every reader sees it in their language.
        self.text = text


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
                    DeferredText(
                        gettext_noop("The attachment %(name)s cannot be read: %(reason)s"),
                        {"name": attachment.filename, "reason": str(exc.strerror or exc)},
                    )
                ) from exc
            email.attach(attachment.filename, content, attachment.content_type)
    return email


def render(email: EmailMultiAlternatives, *, seed: str = "") -> bytes:
    """The message as it goes on the wire (CRLF line ends), like Django's SMTP backend
    serialises it; Bcc is not among the headers. With a ``seed`` (the Message-ID) the
    boundaries are the same on every build of the mail."""
    mime = email.message()
    for position, part in enumerate(mime.walk()):
        if part.is_multipart():
            # A boundary of our own spares the generator searching the body for a
            # collision with one it made up (a regular expression per mail). "=_" cannot
            # occur in base64 or quoted-printable parts, and a seeded one is not known
            # before the Message-ID is made, when the content is given already.
            if seed:
                token = hashlib.sha256(f"{seed}/{position}".encode()).hexdigest()[:32]
            else:
                token = secrets.token_hex(16)
            part.set_boundary(f"=_calmail_{token}")
    return mime.as_bytes(linesep="\r\n")


def attaches_files(message: OutboxMessage) -> bool:
    """Whether the mail carries files from storage (read when it is sent)."""
    return message.attachment_type == AttachmentType.FILE and message.attachment_count > 0


def prebuilt(message: OutboxMessage) -> bytes:
    """What enqueue() stores in raw_message: the whole mail, or b"" for a mail with file
    attachments, whose Date is fixed in its headers instead (built when sent, and again
    the same for the download). Dated when it is planned for, else now."""
    date = message.scheduled_at or datetime.now().astimezone()
    if attaches_files(message):
        message.headers = {
            **message.headers,
            "Date": formatdate(date.timestamp(), localtime=settings.EMAIL_USE_LOCALTIME),
        }
        return b""
    return written(message, date=date) or render(build_email(message, date=date))


def reproducible(message: OutboxMessage) -> bool:
    """Whether as_sent() gives the bytes the server got: stored, or built from a fixed
    Date and Message-ID. Not for mails with files queued before their Date was fixed."""
    return (
        not attaches_files(message)
        or any(name.lower() == "date" for name in message.headers)
        or bool(message.raw_message)
    )


def built(message: OutboxMessage, attachments: Iterable[OutboxAttachment]) -> bytes:
    """The bytes of a mail enqueue() did not build: the same on every call."""
    return render(build_email(message, attachments=attachments), seed=message.message_id)


# Writing a mail directly ------------------------------------------------------------------
#
# The email package spends about 0.4 ms on a mail, most of it folding headers, and would be
# most of what queueing a mail costs. written() produces the same message as build_email()
# + render() (the same headers in the same order, the same parts, transfer encodings and
# line ends; tests/mailbox/test_mime_written.py compares the two) for what almost every
# mail is: text and/or HTML, ASCII addresses, lines within SMTP's limit. Anything else
# returns None and goes through the email package.

# RFC 5322: a line is at most 998 characters; headers fold before 76, the limit RFC 2047
# sets for lines with encoded words (and within the 78 RFC 5322 recommends for all).
_LINE_LIMIT = 998
_FOLD_AT = 76
# Headers written() writes itself: a mail that sets one of them among its extra headers
# goes through the email package, which lets the extra header replace the row's value.
_OWN_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "from",
        "message-id",
        "mime-version",
        "reply-to",
        "subject",
        "to",
    }
)
_LINE_ENDS = re.compile(r"\r\n|\r|\n")
# Bytes that stand for themselves in a "Q" encoded word (RFC 2047 5(3)); space is "_".
_Q_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/ ")
# "=?utf-8?q?" and "?=" around at most 75 characters.
_Q_ROOM_OVERHEAD = len("=?utf-8?q??=")
_Q_ROOM = 75 - _Q_ROOM_OVERHEAD


def _encoded_words(value: str, *, first_room: int = _Q_ROOM) -> list[str]:
    """RFC 2047 encoded words ("=?utf-8?q?…?="), each within 75 characters (the first
    within ``first_room`` characters of text, to fit after the header's name) and never
    splitting a character's bytes between two words."""
    words: list[str] = []
    chunk: list[str] = []
    room = first_room
    for char in value:
        size = sum(1 if byte in _Q_PLAIN else 3 for byte in char.encode())
        if size > room and chunk:
            words.append(header_encode("".join(chunk).encode(), "utf-8"))
            chunk, room = [], _Q_ROOM
        chunk.append(char)
        room -= size
    if chunk:
        words.append(header_encode("".join(chunk).encode(), "utf-8"))
    return words


def _folded(name: str, tokens: list[str], glue: str = "") -> str | None:
    """ "Name: token token…" (``glue`` after every token but the last: "," between
    addresses), folded (CRLF, space) before a token that would pass column 76; the first
    token stays on the name's line, however long. None when a line would pass the hard
    limit of 998 characters."""
    pieces = [token + glue for token in tokens[:-1]] + tokens[-1:]
    lines = []
    line = f"{name}: {pieces[0]}"
    for piece in pieces[1:]:
        if len(line) + 1 + len(piece) <= _FOLD_AT:
            line += " " + piece
        else:
            lines.append(line)
            line = " " + piece
    lines.append(line)
    if any(len(line) > _LINE_LIMIT for line in lines):
        return None
    return "\r\n".join(lines)


def _text_header(name: str, value: str) -> str | None:
    if len(name) + 2 + len(value) <= _FOLD_AT and value.isascii():
        return f"{name}: {value}"
    if value.isascii():
        return _folded(name, value.split(" "))
    # The first word fits after "Name: " within the 76 columns RFC 2047 allows.
    first_room = max(1, _FOLD_AT - len(name) - 2 - (_Q_ROOM_OVERHEAD))
    return _folded(name, _encoded_words(value, first_room=first_room))


def _address_header(name: str, addresses: Iterable[str]) -> str | None:
    addresses = list(addresses)
    if not all(address.isascii() for address in addresses):
        return None
    if len(addresses) == 1 and len(name) + 2 + len(addresses[0]) <= _FOLD_AT:
        return f"{name}: {addresses[0]}"
    return _folded(name, addresses, ",")


def _sender(message: OutboxMessage) -> list[str] | None:
    """The From header's tokens (folded between them), or None for the email package."""
    if not message.from_email.isascii():
        return None
    if not message.from_name:
        return [message.from_email]
    if message.from_name.isascii():
        return formataddr((message.from_name, message.from_email)).split(" ")
    words = _encoded_words(message.from_name)
    if len(words) > 1:
        # Python's own parser does not join encoded words of a display name (RFC 2047
        # says a reader should): a name that long goes through the email package.
        return None
    return [*words, f"<{message.from_email}>"]


def _body_part(text: str, subtype: str) -> tuple[list[str], bytes] | None:
    """The Content-* headers and the body of a text part, or None for a line too long
    for 8bit (the email package then quotes it)."""
    data = "\r\n".join(_LINE_ENDS.split(text)).encode()
    if any(len(line) > _LINE_LIMIT for line in data.split(b"\r\n")):
        return None
    headers = [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "MIME-Version: 1.0",
        f"Content-Transfer-Encoding: {'7bit' if data.isascii() else '8bit'}",
    ]
    return headers, data


def written(message: OutboxMessage, *, date: datetime) -> bytes | None:
    """The mail as build_email() and render() make it, written directly; None when it is
    not one of the plain cases (see above) and needs the email package."""
    if attaches_files(message) or any(name.lower() in _OWN_HEADERS for name in message.headers):
        return None
    parts = []
    if message.body_text or not message.body_html:
        parts.append(_body_part(message.body_text, "plain"))
    if message.body_html:
        parts.append(_body_part(message.body_html, "html"))
    sender = _sender(message)
    if sender is None or any(part is None for part in parts):
        return None
    headers = {
        "Subject": message.subject,
        **message.headers,
        "Message-ID": message.message_id,
    }
    headers.setdefault("Date", formatdate(date.timestamp(), localtime=settings.EMAIL_USE_LOCALTIME))
    subject = _text_header("Subject", headers.pop("Subject"))
    from_line = _folded("From", sender)
    addresses = [
        _address_header(name, values)
        for name, values in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to))
        if values
    ]
    extra = [
        _text_header(name, str(value)) if name.isascii() and name.isprintable() else None
        for name, value in headers.items()
    ]
    if subject is None or from_line is None or None in addresses or None in extra:
        return None
    lines = [subject, from_line, *addresses, *extra]
    if not message.body_html:
        [(part_headers, body)] = parts
        head = "\r\n".join([*part_headers, *lines])
        return head.encode() + b"\r\n\r\n" + body
    boundary = f"=_calmail_{secrets.token_hex(16)}"
    head = "\r\n".join(
        [
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"',
            "MIME-Version: 1.0",
            *lines,
        ]
    )
    chunks = [head.encode(), b"\r\n\r\n"]
    delimiter = f"\r\n--{boundary}\r\n".encode()
    for position, (part_headers, body) in enumerate(parts):
        # The CRLF before a boundary belongs to the boundary, not to the part before.
        chunks.append(f"--{boundary}\r\n".encode() if position == 0 else delimiter)
        chunks.append("\r\n".join(part_headers).encode() + b"\r\n\r\n" + body)
    chunks.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(chunks)


def as_sent(message: OutboxMessage) -> bytes:
    """The mail as the server got it: the bytes enqueue() built, or for a mail with file
    attachments the same build the engine makes when it sends it, ending in a line break
    as SMTP's DATA ends them. Raises UnbuildableMessage when an attachment file is gone."""
    data = bytes(message.raw_message)
    if not data:
        attachments = message.attachments.order_by("id") if attaches_files(message) else ()
        data = built(message, attachments)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def envelope(message: OutboxMessage) -> tuple[str, list[str]]:
    """The SMTP envelope: the bare sender address and every recipient (To, Cc, Bcc)."""
    encoding = settings.DEFAULT_CHARSET
    recipients = [*message.to, *message.cc, *message.bcc]
    return (
        bare_address(message.from_email, encoding),
        [bare_address(address, encoding) for address in recipients if address],
    )
