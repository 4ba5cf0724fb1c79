"""Send one mail with SMTP command pipelining (RFC 2920) when the server offers it.

``smtplib.SMTP.sendmail()`` waits for the reply to every command, so a mail costs
3 + len(recipients) round trips (MAIL, each RCPT, DATA, content). With PIPELINING the
envelope - MAIL FROM, every RCPT TO and DATA - goes out in one write and the replies are
read afterwards, in order; the content and its terminating dot follow in a second write.
That is two round trips per mail, whatever the number of recipients.

``send_mail()`` keeps sendmail()'s observable behaviour: the same exceptions with the
same arguments, refused recipients returned as ``{address: (code, text)}``, RSET after a
refusal so the connection can carry the next mail, and a closed connection after a 421
reply. Servers without PIPELINING get plain sendmail().

Only smtplib's command-level methods (putcmd, send, getreply, rset, close) are used, so
subclasses that override them keep working; calmail's TranscriptSMTP records its
transcript through them. The SMTP session (smtpconfig/transport/session.py) is its
caller; the reply to the content comes back as the result, no state is left behind.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

RawReply = tuple[int, bytes]
Reply = tuple[int, str]
Refused = dict[str, RawReply]

SERVICE_CLOSING = 421
START_MAIL_INPUT = 354
OK = 250
# 251 is "user not local; will forward": accepted, as smtplib counts it.
RECIPIENT_ACCEPTED = (250, 251)

# smtplib's _quote_periods(): a line starting with "." gets another one (RFC 5321 4.5.2).
_LEADING_PERIOD = re.compile(rb"(?m)^\.")
CRLF = b"\r\n"
# Commands and replies in flight must fit the sockets' buffers (RFC 2920 4: a client
# must not write so much that it stops reading the replies), or both sides wait on each
# other. About 40 bytes a recipient keeps this far below the usual 64 KB; a mail to more
# recipients goes command by command.
MAX_PIPELINED_RECIPIENTS = 100


def send_mail(
    client: smtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes
) -> tuple[Refused, Reply]:
    """Send one mail on an open, greeted client; (recipients the server refused, the
    server's reply to the content).

    Raises what ``client.sendmail()`` raises: SMTPSenderRefused, SMTPRecipientsRefused
    (every recipient refused), SMTPDataError, SMTPServerDisconnected, SMTPHeloError.
    """
    if isinstance(recipients, str):
        # A bare string is one address for sendmail(), not a sequence of characters.
        recipients = [recipients]
    recipients = list(recipients)
    client.ehlo_or_helo_if_needed()
    if not client.has_extn("pipelining") or len(recipients) > MAX_PIPELINED_RECIPIENTS:
        return _send_one_by_one(client, sender, recipients, data)
    return _send_pipelined(client, sender, recipients, data)


# Without PIPELINING ----------------------------------------------------------------------


def _send_one_by_one(
    client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes
) -> tuple[Refused, Reply]:
    # sendmail() returns only the refused recipients and smtplib keeps no record of the
    # reply to the content, so catch what data() returns, on this client only.
    data_replies: list[RawReply] = []
    send_data = client.data

    def data_remembering_reply(message: bytes) -> RawReply:
        reply = send_data(message)
        data_replies.append(reply)
        return reply

    with _shadowed_method(client, "data", data_remembering_reply):
        refused = client.sendmail(sender, recipients, data)
    code, text = data_replies[-1]
    return refused, (code, text.decode("utf-8", errors="replace"))


# With PIPELINING -------------------------------------------------------------------------


@dataclass
class _EnvelopeReplies:
    """The replies to MAIL, each RCPT and DATA, as far as the server gave them."""

    mail: RawReply
    recipients: list[RawReply] = field(default_factory=list)
    # None when reading stopped earlier because the server is closing the connection.
    data: RawReply | None = None
    service_closing: bool = False


def _send_pipelined(
    client: smtplib.SMTP, sender: str, recipients: list[str], data: bytes
) -> tuple[Refused, Reply]:
    client.send(_envelope_commands(client, sender, recipients, message_size=len(data)))
    replies = _read_envelope_replies(client, len(recipients))
    refused = {
        address: reply
        for address, reply in zip(recipients, replies.recipients, strict=False)
        if reply[0] not in RECIPIENT_ACCEPTED
    }
    error = _envelope_error(replies, sender, recipients, refused)
    if error is not None:
        _abandon_transaction(client, replies)
        raise error
    return refused, _send_content(client, data)


def _envelope_commands(
    client: smtplib.SMTP, sender: str, recipients: list[str], *, message_size: int
) -> bytes:
    """MAIL FROM, every RCPT TO and DATA, exactly as putcmd() writes them, in one piece.

    putcmd() is still called for every command so that its checks (no CR/LF inside an
    argument) and a subclass's additions (TranscriptSMTP's transcript) apply; only its
    writes are collected here instead of reaching the socket one by one.
    """
    mail_options = ""
    if client.does_esmtp and client.has_extn("size"):
        # As sendmail() does: lets the server refuse an oversized mail before the content.
        mail_options = f" size={message_size}"
    commands = [
        ("mail", f"FROM:{_quoted(sender)}{mail_options}"),
        *(("rcpt", f"TO:{_quoted(recipient)}") for recipient in recipients),
        ("data", ""),
    ]
    written: list[str | bytes] = []
    with _shadowed_method(client, "send", written.append):
        for command, arguments in commands:
            client.putcmd(command, arguments)
    return b"".join(
        part.encode(client.command_encoding) if isinstance(part, str) else part for part in written
    )


# Characters after which an address needs smtplib's parser (display names, quoting,
# comments, route syntax); everything else is a bare addr-spec.
_NEEDS_PARSING = re.compile(r'[<>()"\\,;:\s\[\]]')


def _quoted(address: str) -> str:
    """``<address>`` as smtplib.quoteaddr() gives it; its parser costs more than the rest
    of a pipelined envelope, so a plain addr-spec (what calmail stores) skips it."""
    if address and address.isascii() and not _NEEDS_PARSING.search(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _read_envelope_replies(client: smtplib.SMTP, recipient_count: int) -> _EnvelopeReplies:
    """Read the reply to every pipelined command, in order, even after a refusal, so the
    connection stays in step; stop at 421, after which the server sends nothing more."""
    replies = _EnvelopeReplies(mail=client.getreply())
    if replies.mail[0] == SERVICE_CLOSING:
        return _closing(client, replies)
    for _ in range(recipient_count):
        reply = client.getreply()
        replies.recipients.append(reply)
        if reply[0] == SERVICE_CLOSING:
            return _closing(client, replies)
    replies.data = client.getreply()
    if replies.data[0] == SERVICE_CLOSING:
        return _closing(client, replies)
    return replies


def _closing(client: smtplib.SMTP, replies: _EnvelopeReplies) -> _EnvelopeReplies:
    client.close()
    replies.service_closing = True
    return replies


def _envelope_error(
    replies: _EnvelopeReplies, sender: str, recipients: list[str], refused: Refused
) -> smtplib.SMTPException | None:
    """The exception sendmail() would raise for these replies, checked in its order."""
    if replies.mail[0] != OK:
        return smtplib.SMTPSenderRefused(*replies.mail, sender)
    if replies.data is None or len(refused) == len(recipients):
        # No reply to DATA means a 421 came during RCPT: sendmail() stops there too.
        return smtplib.SMTPRecipientsRefused(refused)
    if replies.data[0] != START_MAIL_INPUT:
        return smtplib.SMTPDataError(*replies.data)
    return None


def _abandon_transaction(client: smtplib.SMTP, replies: _EnvelopeReplies) -> None:
    """Leave the connection ready for the next mail after a refused envelope."""
    if replies.service_closing:
        return
    if replies.data is not None and replies.data[0] == START_MAIL_INPUT:
        # The server accepted DATA although the envelope failed; RFC 2920 3.1: end the
        # content at once with a lone dot, which it then refuses (or takes as empty).
        try:
            client.send(b"." + CRLF)
            code, _ = client.getreply()
        except smtplib.SMTPServerDisconnected:
            return
        if code == SERVICE_CLOSING:
            client.close()
            return
    _reset(client)


def _send_content(client: smtplib.SMTP, data: bytes) -> Reply:
    client.send(_content_with_terminator(data))
    code, text = client.getreply()
    reply = (code, text.decode("utf-8", errors="replace"))
    if code != OK:
        if code == SERVICE_CLOSING:
            client.close()
        else:
            _reset(client)
        raise smtplib.SMTPDataError(code, text)
    return reply


def _content_with_terminator(data: bytes) -> bytes:
    """The content dot-stuffed and ending in CRLF, then the "." line, as smtplib's data()."""
    quoted = _LEADING_PERIOD.sub(b"..", data)
    if not quoted.endswith(CRLF):
        quoted += CRLF
    return quoted + b"." + CRLF


# Helpers ---------------------------------------------------------------------------------


def _reset(client: smtplib.SMTP) -> None:
    # Like smtplib's _rset(): a server that hung up shows at the next command, not here.
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        client.rset()


@contextlib.contextmanager
def _shadowed_method(
    client: smtplib.SMTP, name: str, replacement: Callable[..., Any]
) -> Iterator[None]:
    """Replace one method on this client instance only (never on its class) for a while."""
    own_attributes = vars(client)
    had_own = name in own_attributes
    previous = own_attributes.get(name)
    setattr(client, name, replacement)
    try:
        yield
    finally:
        if had_own:
            setattr(client, name, previous)
        else:
            delattr(client, name)
