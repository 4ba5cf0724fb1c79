"""The connection test and the test mail of the SMTP configuration pages.

``test_connection()``: connect, TLS, AUTH and a MAIL FROM / RCPT TO probe without DATA,
with a transcript for the UI. ``send_test_mail()``: a real short message through the
session the delivery engine uses, with the server's final reply. Every text in their
reports passes ``redact()``.
"""

from __future__ import annotations

import contextlib
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _

from smtpconfig.models import Mailer, SmtpConfiguration
from smtpconfig.transport.sendmail import check_sendmail_binary
from smtpconfig.transport.session import SmtpSession, bare_address, make_session
from smtpconfig.transport.transcript import TranscriptLine
from smtpconfig.transport.verdicts import describe_exception, format_reply, redact, reply_of


@dataclass
class ConnectionReport:
    """The outcome of a connection test or test mail, for people to read."""

    ok: bool
    verdict: str
    transcript: list[TranscriptLine] = field(default_factory=list)
    duration: float = 0.0
    # The last reply that decided the outcome (e.g. 250 after DATA), when there was one.
    reply_code: int | None = None
    reply_text: str = ""


def test_connection(
    configuration: SmtpConfiguration, *, sender: str, recipient: str
) -> ConnectionReport:
    """Check that ``configuration`` can deliver from ``sender`` to ``recipient``.

    SMTP: for OAuth a new access token first; connect (implicit TLS for SSL/TLS), EHLO,
    STARTTLS and EHLO again, AUTH when configured, then MAIL FROM / RCPT TO as a probe without DATA (nothing is sent), RSET
    and QUIT. The whole test is bounded by the configuration's timeout.
    sendmail: only checks that the binary exists and is executable.
    """
    started = time.monotonic()
    if configuration.mailer == Mailer.SENDMAIL:
        ok, verdict = check_sendmail_binary(configuration.sendmail_path)
        return _report(configuration, ok=ok, verdict=verdict, started=started)

    transcript: list[TranscriptLine] = []
    session = SmtpSession(
        configuration,
        transcript=transcript,
        deadline=started + configuration.timeout,
        fresh_token=True,
    )
    try:
        session.open()
        client = session.client
        if client is None:
            raise RuntimeError("open() left no client")
        code, message = client.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, message, sender)
        code, message = client.rcpt(recipient)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({recipient: (code, message)})
        reply = (code, message.decode("utf-8", errors="replace"))
        client.rset()
        client.quit()
    except Exception as exc:
        # After a refusal the server still listens and deserves a QUIT; after a 421 or a
        # failed greeting it has hung up.
        failed_code, _text = reply_of(exc)
        if (
            failed_code is not None
            and failed_code != 421
            and not isinstance(exc, smtplib.SMTPConnectError)
        ):
            session.close()
        else:
            session.hang_up()
        return _failure_report(exc, configuration, transcript, started)
    if configuration.uses_oauth:
        verdict = _(
            "Connection OK: the identity provider issued a token, the server accepted it "
            "and the test recipient."
        )
    elif configuration.smtp_auth:
        verdict = _("Connection OK: the server accepted the login and the test recipient.")
    else:
        verdict = _("Connection OK: the server accepted the test sender and recipient.")
    return _report(
        configuration, ok=True, verdict=verdict, started=started, transcript=transcript, reply=reply
    )


# Not a pytest test, despite the name.
# (pytest's marker; a function has no such attribute for type checkers)
test_connection.__test__ = False  # type: ignore[attr-defined]


def _exception_reply(exc: BaseException) -> tuple[int, str] | None:
    """The server reply an exception carries, if any."""
    code, text = reply_of(exc)
    return None if code is None else (code, text)


def _report(
    configuration: SmtpConfiguration,
    *,
    ok: bool,
    verdict: str,
    started: float,
    transcript: Sequence[TranscriptLine] = (),
    reply: tuple[int, str] | None = None,
) -> ConnectionReport:
    """The report for people to read. Every text in it passes redact(), whatever it quotes
    (it goes on to the page, the Log and the web server's log)."""
    return ConnectionReport(
        ok=ok,
        verdict=redact(verdict, configuration),
        transcript=[
            TranscriptLine(line.direction, redact(line.text, configuration)) for line in transcript
        ],
        duration=time.monotonic() - started,
        reply_code=reply[0] if reply else None,
        reply_text=redact(reply[1], configuration) if reply else "",
    )


def _failure_report(
    exc: Exception,
    configuration: SmtpConfiguration,
    transcript: list[TranscriptLine],
    started: float,
) -> ConnectionReport:
    return _report(
        configuration,
        ok=False,
        verdict=describe_exception(exc, configuration),
        started=started,
        transcript=transcript,
        reply=_exception_reply(exc),
    )


def build_test_mail(
    configuration: SmtpConfiguration, *, sender: str, recipient: str
) -> EmailMessage:
    """The short message send_test_mail() sends, in the active language."""
    sent_at = formats.date_format(timezone.localtime(timezone.now()), "DATETIME_FORMAT")
    body = _(
        "This is a test mail from calmail.\n\n"
        "It was sent through the SMTP configuration “%(name)s” (%(mailer)s, %(address)s) "
        "at %(sent_at)s.\n\n"
        "If you can read it, this configuration delivers mail."
    ) % {
        "name": configuration.name,
        "mailer": configuration.mailer,
        "address": configuration.address,
        "sent_at": sent_at,
    }
    return EmailMessage(
        subject=_("calmail test mail"), body=body, from_email=sender, to=[recipient]
    )


def send_test_mail(
    configuration: SmtpConfiguration,
    *,
    sender: str,
    recipient: str,
    language: str | None = None,
) -> ConnectionReport:
    """Send a short real message through ``configuration``, the way the outbox does.

    Uses the delivery engine's session, so the test takes its code path. The verdict
    quotes the server's reply to the message (SMTP) or the exit status (sendmail);
    ``language`` picks the language of the message (default: the active one).
    """
    started = time.monotonic()
    transcript: list[TranscriptLine] = []
    with translation.override(language) if language else contextlib.nullcontext():
        message = build_test_mail(configuration, sender=sender, recipient=recipient)
    encoding = message.encoding or settings.DEFAULT_CHARSET
    session = make_session(configuration, transcript=transcript)
    try:
        session.open()
        sent = session.send_raw(
            bare_address(message.from_email, encoding),
            [bare_address(address, encoding) for address in message.recipients()],
            # Django's message classes take linesep; the email package's base does not.
            message.message().as_bytes(linesep="\r\n"),  # type: ignore[call-arg]
        )
    except Exception as exc:
        session.close()
        return _failure_report(exc, configuration, transcript, started)
    # The server has accepted the mail; a hiccup while saying goodbye does not undo that.
    session.close()
    if sent.exit_status is not None:
        return _report(
            configuration,
            ok=True,
            verdict=_("Test mail handed to %(path)s: exit status %(status)s")
            % {"path": configuration.sendmail_path, "status": sent.exit_status},
            started=started,
            transcript=transcript,
        )
    code = sent.reply_code or 250
    return _report(
        configuration,
        ok=True,
        verdict=_("Test mail accepted by the server: %(reply)s")
        % {"reply": format_reply(code, sent.reply_text)},
        started=started,
        transcript=transcript,
        reply=(code, sent.reply_text),
    )
