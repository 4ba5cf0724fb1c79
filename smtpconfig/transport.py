"""The only place in calmail that opens mail connections (SMTP or a local sendmail binary).

Three entry points:

- ``get_email_backend()``: a Django email backend for a configuration; the delivery
  engine and the test mail use it, so both take the same code path.
- ``test_connection()``: connect, TLS, AUTH and a MAIL FROM / RCPT TO probe without
  DATA, with a transcript for the UI.
- ``send_test_mail()``: a real short message, with the server's final reply.

Secrets: the password is revealed only when a connection is opened, never formatted
into a message, and replaced by ``********`` in every transcript line sent during AUTH.
What the server (or sendmail) says can quote it all the same ("535 … failed for mailer
<password>"), so every such text passes ``redact()`` before anyone sees it: reports
(verdict, transcript, reply), ``describe_exception()`` and the delivery engine's errors.
smtplib's debug output is never enabled because it prints AUTH payloads.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import functools
import os
import re
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend
from django.core.mail.message import sanitize_address
from django.core.mail.utils import DNS_NAME
from django.utils import formats, timezone, translation
from django.utils.functional import cached_property
from django.utils.translation import gettext as _

from calmail.common.crypto import SecretDecryptionError
from calmail.common.fields import reveal_secret
from smtpconfig.models import Mailer, Security, SmtpConfiguration

MASK = "********"

# sysexits.h: EX_TEMPFAIL, what sendmail returns when delivery should be retried later.
SENDMAIL_EX_TEMPFAIL = 75


class Direction(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"
    # Notes of our own (connecting, TLS established, exit status), not protocol lines.
    INFO = "info"


@dataclass(frozen=True)
class TranscriptLine:
    direction: Direction
    text: str


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


class StartTlsNotOffered(smtplib.SMTPNotSupportedError):
    """STARTTLS is configured, but the server's EHLO does not offer it."""


class AuthNotOffered(smtplib.SMTPNotSupportedError):
    """SMTP auth is configured, but the server's EHLO does not offer AUTH."""


class NoCommonAuthMechanism(smtplib.SMTPException):
    """The server offers AUTH, but none of the mechanisms smtplib speaks."""

    def __init__(self, offered: str):
        self.offered = offered
        super().__init__(f"No supported AUTH mechanism; the server offers: {offered}")


class CaFileError(Exception):
    """settings.CALMAIL_SMTP_CA_FILE names a file that cannot be loaded."""


class SendmailError(Exception):
    """The sendmail binary exited with a non-zero status."""

    def __init__(self, path: str, returncode: int, stderr_line: str):
        self.path = path
        self.returncode = returncode
        self.stderr_line = stderr_line
        detail = f": {stderr_line}" if stderr_line else ""
        super().__init__(f"{path} exited with status {returncode}{detail}")

    @property
    def temporary(self) -> bool:
        return self.returncode == SENDMAIL_EX_TEMPFAIL


class SendmailTimeout(TimeoutError):
    """The sendmail binary did not finish within the configuration's timeout."""


# TLS -----------------------------------------------------------------------------------


def build_ssl_context(*, verify_certificate: bool = True) -> ssl.SSLContext:
    """The TLS client context for SMTP: system CAs plus settings.CALMAIL_SMTP_CA_FILE.

    Certificate and host name are verified unless verify_certificate is False.
    """
    context = ssl.create_default_context()
    ca_file = getattr(settings, "CALMAIL_SMTP_CA_FILE", None)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise CaFileError(
                _("The CA file %(path)s (CALMAIL_SMTP_CA_FILE) cannot be loaded: %(reason)s")
                % {"path": ca_file, "reason": getattr(exc, "strerror", None) or exc}
            ) from exc
    if not verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# smtplib with a transcript --------------------------------------------------------------


class _TranscriptMixin:
    """Records every command and reply of an smtplib session, masking AUTH.

    ``transcript`` (a list, or None to record nothing) receives TranscriptLines.
    ``deadline`` (a time.monotonic() value, or None) bounds the whole session: every
    read and write gets at most the time that is left.
    ``last_reply`` is the latest (code, text) from the server; ``last_data_reply`` the
    reply to the message content, i.e. the server's verdict on the last mail.
    """

    def __init__(
        self,
        *args,
        transcript: list[TranscriptLine] | None = None,
        deadline: float | None = None,
        **kwargs,
    ):
        self.transcript = transcript
        self.deadline = deadline
        self.last_reply: tuple[int, str] | None = None
        self.last_data_reply: tuple[int, str] | None = None
        self._in_auth = False
        self._data_size: int | None = None
        super().__init__(*args, **kwargs)

    def _record(self, direction: Direction, text: str) -> None:
        if self.transcript is not None:
            self.transcript.append(TranscriptLine(direction, text))

    def _remaining(self) -> float | None:
        """Seconds left before the deadline; raises TimeoutError once it has passed."""
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.close()
            raise TimeoutError("deadline passed")
        return remaining

    def _bound_socket_timeout(self) -> None:
        remaining = self._remaining()
        if remaining is not None and self.sock is not None:
            timeout = self.timeout if isinstance(self.timeout, int | float) else None
            self.sock.settimeout(min(timeout, remaining) if timeout else remaining)

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        # smtplib only remembers the host (for TLS server_hostname) when connecting from
        # __init__; remember it here too so connect() can be called separately.
        self._host = host
        self._record(
            Direction.INFO, _("Connecting to %(host)s:%(port)s") % {"host": host, "port": port}
        )
        return super().connect(host, port, source_address)

    def _get_socket(self, host, port, timeout):
        remaining = self._remaining()
        if remaining is not None:
            timeout = min(timeout, remaining) if timeout else remaining
        sock = super()._get_socket(host, port, timeout)
        if isinstance(sock, ssl.SSLSocket):
            self._record_tls(sock)
        return sock

    def _record_tls(self, sock: ssl.SSLSocket) -> None:
        cipher = sock.cipher()
        self._record(
            Direction.INFO,
            _("TLS established: %(version)s, %(cipher)s")
            % {"version": sock.version(), "cipher": cipher[0] if cipher else "?"},
        )

    def putcmd(self, cmd: str, args: str = "") -> None:
        if self._in_auth:
            # Every client line inside AUTH carries credentials (base64 is no protection).
            if cmd.upper() == "AUTH":
                mechanism = args.split(" ", 1)[0].upper()
                text = f"AUTH {mechanism} {MASK}"
            else:
                text = MASK
        else:
            text = f"{cmd} {args}" if args else cmd
        self._record(Direction.CLIENT, text)
        super().putcmd(cmd, args)

    def send(self, s) -> None:
        self._bound_socket_timeout()
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self._data_size is not None and self.last_reply and self.last_reply[0] == 354:
            self._record(
                Direction.CLIENT, _("[message content, %(size)s bytes]") % {"size": self._data_size}
            )
        self._bound_socket_timeout()
        try:
            code, message = super().getreply()
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib turns a read timeout into "connection unexpectedly closed"; a
            # timeout is a different diagnosis (and a temporary failure), so keep it.
            if isinstance(exc.__context__, TimeoutError):
                self._record(Direction.INFO, _("No answer from the server in time"))
                raise TimeoutError("timed out waiting for the server") from exc
            self._record(Direction.INFO, _("The server closed the connection"))
            raise
        text = message.decode("utf-8", errors="replace")
        lines = text.split("\n") if text else [""]
        for position, line in enumerate(lines):
            separator = " " if position == len(lines) - 1 else "-"
            self._record(Direction.SERVER, f"{code}{separator}{line}".rstrip())
        self.last_reply = (code, text)
        return code, message

    def auth(self, mechanism, authobject, *, initial_response_ok=True):
        self._in_auth = True
        try:
            return super().auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        finally:
            self._in_auth = False

    def login(self, user: str, password: str, *, initial_response_ok=True):
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise AuthNotOffered("SMTP AUTH extension not supported by server.")
        offered = self.esmtp_features["auth"].upper().split()
        if not set(offered) & {"CRAM-MD5", "PLAIN", "LOGIN"}:
            raise NoCommonAuthMechanism(" ".join(offered) or "-")
        return super().login(user, password, initial_response_ok=initial_response_ok)

    def starttls(self, *args, **kwargs):
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise StartTlsNotOffered("STARTTLS extension not supported by server.")
        result = super().starttls(*args, **kwargs)
        if isinstance(self.sock, ssl.SSLSocket):
            self._record_tls(self.sock)
        return result

    def data(self, msg):
        self._data_size = len(msg)
        try:
            code, message = super().data(msg)
        finally:
            self._data_size = None
        self.last_data_reply = (code, message.decode("utf-8", errors="replace"))
        return code, message


class TranscriptSMTP(_TranscriptMixin, smtplib.SMTP):
    """smtplib.SMTP that records a masked transcript and the last replies."""


class TranscriptSMTP_SSL(_TranscriptMixin, smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL (implicit TLS) that records a masked transcript and the last replies."""


# Django email backends -------------------------------------------------------------------


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend with calmail's TLS policy and a transcript-recording client.

    After sending, ``connection.last_data_reply`` holds the server's reply to the last
    message (while the backend is open).
    """

    def __init__(
        self,
        *,
        verify_certificate: bool = True,
        transcript: list[TranscriptLine] | None = None,
        **kwargs,
    ):
        self.verify_certificate = verify_certificate
        self.transcript = transcript
        super().__init__(**kwargs)

    @property
    def connection_class(self):
        client_class = TranscriptSMTP_SSL if self.use_ssl else TranscriptSMTP
        return functools.partial(client_class, transcript=self.transcript)

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        return build_ssl_context(verify_certificate=self.verify_certificate)


class SendmailBackend(BaseEmailBackend):
    """Pipes each message to a local sendmail binary (no shell involved).

    Runs ``<path> -i -f <envelope sender> -- <recipients…>`` per message; a non-zero
    exit raises SendmailError with the first line of stderr (never the message).
    """

    def __init__(
        self,
        *,
        sendmail_path: str,
        timeout: float,
        transcript: list[TranscriptLine] | None = None,
        fail_silently: bool = False,
        **kwargs,
    ):
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.sendmail_path = sendmail_path
        self.timeout = timeout
        self.transcript = transcript
        self.last_returncode: int | None = None

    def _record(self, direction: Direction, text: str) -> None:
        if self.transcript is not None:
            self.transcript.append(TranscriptLine(direction, text))

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            try:
                if self._send(message):
                    sent += 1
            except (OSError, SendmailError, subprocess.SubprocessError):
                if not self.fail_silently:
                    raise
        return sent

    def _send(self, message: EmailMessage) -> bool:
        recipients = message.recipients()
        if not recipients:
            return False
        encoding = message.encoding or settings.DEFAULT_CHARSET
        self.send_raw(
            bare_address(message.from_email, encoding),
            [bare_address(recipient, encoding) for recipient in recipients],
            message.message().as_bytes(),
        )
        return True

    def send_raw(self, sender: str, recipients: Sequence[str], content: bytes) -> None:
        """Pipe one ready-made message (bare envelope addresses) to sendmail. Line ends may
        be CRLF, as on the wire: a local sendmail wants LF, so they are converted."""
        command = [self.sendmail_path, "-i", "-f", sender, "--", *recipients]
        content = content.replace(b"\r\n", b"\n")
        self._record(Direction.CLIENT, " ".join(command))
        self._record(
            Direction.CLIENT, _("[message content, %(size)s bytes]") % {"size": len(content)}
        )
        try:
            # A list of arguments and no shell: addresses cannot inject options or commands.
            completed = subprocess.run(  # noqa: S603
                command, input=content, capture_output=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            self._record(
                Direction.INFO, _("No exit within %(seconds)s s") % {"seconds": self.timeout}
            )
            raise SendmailTimeout(f"{self.sendmail_path} did not finish in time") from None
        self.last_returncode = completed.returncode
        self._record(Direction.INFO, _("Exit status %(status)s") % {"status": completed.returncode})
        if completed.returncode != 0:
            stderr_line = _first_line(completed.stderr)
            if stderr_line:
                self._record(Direction.SERVER, stderr_line)
            raise SendmailError(self.sendmail_path, completed.returncode, stderr_line)


def bare_address(address: str, encoding: str) -> str:
    """The addr-spec of an address ("Name <a@b>" -> "a@b"), IDNA-encoded like Django does."""
    # An ASCII address without a display name is already that; Django's parser would only
    # cost time, once per mail in the delivery engine.
    if address.isascii() and "<" not in address:
        return address
    return parseaddr(sanitize_address(address, encoding))[1]


def _first_line(output: bytes) -> str:
    for line in output.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def get_email_backend(
    configuration: SmtpConfiguration,
    *,
    fail_silently: bool = False,
    transcript: list[TranscriptLine] | None = None,
) -> BaseEmailBackend:
    """A Django email backend that delivers through ``configuration``.

    SMTP: host, port, STARTTLS or implicit TLS, AUTH (only with ``smtp_auth``) and the
    timeout come from the configuration; certificates are verified (system CAs plus
    settings.CALMAIL_SMTP_CA_FILE) unless ``verify_certificate`` is off.
    sendmail: a SendmailBackend for ``sendmail_path``.

    Pass a list as ``transcript`` to have the session recorded into it (password masked).
    Raises SecretDecryptionError when AUTH is on and the stored password cannot be read.
    """
    if configuration.mailer == Mailer.SENDMAIL:
        return SendmailBackend(
            sendmail_path=configuration.sendmail_path,
            timeout=configuration.timeout,
            transcript=transcript,
            fail_silently=fail_silently,
        )
    username, password = "", ""
    if configuration.smtp_auth:
        username = configuration.username
        password = reveal_secret(configuration.password)
    return SmtpBackend(
        host=configuration.host,
        port=configuration.port,
        username=username,
        password=password,
        use_tls=configuration.security == Security.STARTTLS,
        use_ssl=configuration.security == Security.SSL,
        timeout=configuration.timeout,
        fail_silently=fail_silently,
        verify_certificate=configuration.verify_certificate,
        transcript=transcript,
    )


# Verdicts ----------------------------------------------------------------------------------


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}".strip()


def _secret_forms(username: str, password: str) -> list[str]:
    """Regular expressions for the password and its base64 forms as they go over the wire
    (AUTH LOGIN sends the password alone, AUTH PLAIN "\\0user\\0password"), longest first.
    A base64 form matches with or without its "=" padding; the password itself with any
    run of whitespace where it has one, because verdicts collapse a reply's whitespace."""
    words = password.split()
    forms = [r"\s+".join(map(re.escape, words)) if words else re.escape(password)]
    for raw in (password, f"\0{username}\0{password}"):
        encoded = base64.b64encode(raw.encode()).decode().rstrip("=")
        forms.append(re.escape(encoded) + "=*")
    return sorted(forms, key=len, reverse=True)


@functools.lru_cache(maxsize=16)
def _secret_pattern(username: str, password: str) -> re.Pattern:
    # Case-insensitive: a server may echo the credentials upper-cased; masking a little
    # too much of a base64 text costs nothing. Cached because the delivery engine redacts
    # every reply; loaded configurations hold the plaintext in memory anyway.
    return re.compile("|".join(_secret_forms(username, password)), re.IGNORECASE)


def redact(text: str, configuration: SmtpConfiguration) -> str:
    """text with the configuration's password (and its base64 forms) replaced by ********.

    The one path for every text that comes from the mail server or sendmail before anyone
    sees it: verdicts, transcripts, reply texts, error messages, logs. A server may quote
    the credentials it refused ("535 … failed for mailer <password>").
    """
    if not text:
        return text
    try:
        password = reveal_secret(configuration.password)
    except SecretDecryptionError:
        # No plaintext here, so none that a server could have been sent either.
        return text
    if not password:
        return text
    return _secret_pattern(configuration.username or "", password).sub(MASK, text)


def describe_exception(exc: BaseException, configuration: SmtpConfiguration) -> str:
    """A plain-language verdict for an exception raised while talking to the mail system.

    It quotes the server's reply, so it is redacted like every server text.
    """
    return redact(_describe_exception(exc, configuration), configuration)


def _describe_exception(exc: BaseException, configuration: SmtpConfiguration) -> str:
    address = configuration.address
    seconds = configuration.timeout
    if isinstance(exc, SecretDecryptionError):
        return _(
            "The stored password cannot be decrypted with the configured keys. "
            "Enter the password again, or restore the key it was encrypted with."
        )
    if isinstance(exc, CaFileError):
        return str(exc)
    if isinstance(exc, SendmailTimeout):
        return _("Timed out after %(seconds)s s") % {"seconds": seconds}
    if isinstance(exc, SendmailError):
        if exc.stderr_line:
            return _("sendmail failed with exit status %(status)s: %(error)s") % {
                "status": exc.returncode,
                "error": exc.stderr_line,
            }
        return _("sendmail failed with exit status %(status)s") % {"status": exc.returncode}
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _("Authentication failed: %(reply)s") % {
            "reply": _reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, smtplib.SMTPConnectError):
        return _("The server refused the connection: %(reply)s") % {
            "reply": _reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _("Sender refused: %(reply)s") % {"reply": _reply(exc.smtp_code, exc.smtp_error)}
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = next(iter(exc.recipients.values()), (0, b""))
        return _("Recipient refused: %(reply)s") % {"reply": _reply(code, message)}
    if isinstance(exc, smtplib.SMTPDataError):
        return _("Message refused: %(reply)s") % {"reply": _reply(exc.smtp_code, exc.smtp_error)}
    if isinstance(exc, StartTlsNotOffered):
        return _("The server does not offer STARTTLS")
    if isinstance(exc, AuthNotOffered):
        return _("The server does not offer SMTP AUTH (some servers offer it only after STARTTLS)")
    if isinstance(exc, NoCommonAuthMechanism):
        return _("The server offers no login method calmail supports (offered: %(mechanisms)s)") % {
            "mechanisms": exc.offered
        }
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _("The server closed the connection unexpectedly")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _("The server answered: %(reply)s") % {
            "reply": _reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _("Certificate not trusted: %(reason)s") % {
            "reason": exc.verify_message or exc.reason or exc
        }
    if isinstance(exc, ssl.SSLError):
        return _("TLS handshake failed: %(reason)s") % {"reason": exc.reason or exc}
    if isinstance(exc, TimeoutError):
        return _("Timed out after %(seconds)s s") % {"seconds": seconds}
    if isinstance(exc, ConnectionRefusedError):
        return _("Connection refused by %(address)s") % {"address": address}
    if isinstance(exc, socket.gaierror):
        return _("Host name could not be resolved: %(host)s") % {"host": configuration.host}
    if configuration.mailer == Mailer.SENDMAIL and isinstance(exc, FileNotFoundError):
        return _("The sendmail binary %(path)s does not exist") % {
            "path": configuration.sendmail_path
        }
    if configuration.mailer == Mailer.SENDMAIL and isinstance(exc, PermissionError):
        return _("The sendmail binary %(path)s is not executable") % {
            "path": configuration.sendmail_path
        }
    if isinstance(exc, OSError) and exc.strerror:
        return _("Network error with %(address)s: %(reason)s") % {
            "address": address,
            "reason": exc.strerror,
        }
    return _("Unexpected error: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}


# Connection test and test mail ------------------------------------------------------------


def test_connection(
    configuration: SmtpConfiguration, *, sender: str, recipient: str
) -> ConnectionReport:
    """Check that ``configuration`` can deliver from ``sender`` to ``recipient``.

    SMTP: connect (implicit TLS for SSL/TLS), EHLO, STARTTLS and EHLO again, AUTH when
    configured, then MAIL FROM / RCPT TO as a probe without DATA (nothing is sent), RSET
    and QUIT. The whole test is bounded by the configuration's timeout.
    sendmail: only checks that the binary exists and is executable.
    """
    started = time.monotonic()
    if configuration.mailer == Mailer.SENDMAIL:
        ok, verdict = _check_sendmail_binary(configuration)
        return _report(configuration, ok=ok, verdict=verdict, started=started)

    transcript: list[TranscriptLine] = []
    client: TranscriptSMTP | None = None
    reply: tuple[int, str] | None = None
    try:
        password = reveal_secret(configuration.password) if configuration.smtp_auth else ""
        client_class = (
            TranscriptSMTP_SSL if configuration.security == Security.SSL else TranscriptSMTP
        )
        options = {}
        context = None
        if configuration.security != Security.NONE:
            # Built before connecting: a bad CA file is a configuration error, not a network one.
            context = build_ssl_context(verify_certificate=configuration.verify_certificate)
            if configuration.security == Security.SSL:
                options["context"] = context
        client = client_class(
            local_hostname=DNS_NAME.get_fqdn(),
            timeout=configuration.timeout,
            transcript=transcript,
            deadline=started + configuration.timeout,
            **options,
        )
        code, message = client.connect(configuration.host, configuration.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, message)
        client.ehlo_or_helo_if_needed()
        if configuration.security == Security.STARTTLS:
            client.starttls(context=context)
            client.ehlo_or_helo_if_needed()
        if configuration.smtp_auth:
            client.login(configuration.username, password)
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
        reply = _exception_reply(exc)
        polite = (
            reply is not None and reply[0] != 421 and not isinstance(exc, smtplib.SMTPConnectError)
        )
        _close_quietly(client, polite=polite)
        return _failure_report(exc, configuration, transcript, started)
    if configuration.smtp_auth:
        verdict = _("Connection OK: the server accepted the login and the test recipient.")
    else:
        verdict = _("Connection OK: the server accepted the test sender and recipient.")
    return _report(
        configuration, ok=True, verdict=verdict, started=started, transcript=transcript, reply=reply
    )


# Not a pytest test, despite the name.
test_connection.__test__ = False


def _exception_reply(exc: BaseException) -> tuple[int, str] | None:
    """The server reply an smtplib exception carries, if any."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, message = next(iter(exc.recipients.values()))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, message = exc.smtp_code, exc.smtp_error
    else:
        return None
    text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
    return code, text


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


def _close_quietly(client: smtplib.SMTP | None, *, polite: bool) -> None:
    """Say QUIT when the server is still talking to us, then drop the connection."""
    if client is None:
        return
    if polite and client.sock is not None:
        with contextlib.suppress(OSError):
            client.quit()
    client.close()


def _check_sendmail_binary(configuration: SmtpConfiguration) -> tuple[bool, str]:
    path = configuration.sendmail_path
    if not path:
        return False, _("No sendmail binary is configured.")
    if not os.path.isfile(path):
        return False, _("The sendmail binary %(path)s does not exist") % {"path": path}
    if not os.access(path, os.X_OK):
        return False, _("The sendmail binary %(path)s is not executable") % {"path": path}
    return True, _(
        "The sendmail binary %(path)s exists and is executable. This test does not run it; "
        "send a test mail to check delivery."
    ) % {"path": path}


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

    Uses get_email_backend(), so the test takes the delivery engine's code path. The
    verdict quotes the server's reply to the message (SMTP) or the exit status (sendmail);
    ``language`` picks the language of the message (default: the active one).
    """
    started = time.monotonic()
    transcript: list[TranscriptLine] = []
    with translation.override(language) if language else contextlib.nullcontext():
        message = build_test_mail(configuration, sender=sender, recipient=recipient)
    backend: BaseEmailBackend | None = None
    client = None
    try:
        backend = get_email_backend(configuration, transcript=transcript)
        backend.open()
        client = getattr(backend, "connection", None)
        backend.send_messages([message])
    except Exception as exc:
        if backend is not None:
            # SMTPException is an OSError: one clause covers both.
            with contextlib.suppress(OSError):
                backend.close()
        return _failure_report(exc, configuration, transcript, started)
    # The server has accepted the mail; a hiccup while saying goodbye does not undo that.
    with contextlib.suppress(OSError):
        backend.close()
    if isinstance(backend, SendmailBackend):
        return _report(
            configuration,
            ok=True,
            verdict=_("Test mail handed to %(path)s: exit status %(status)s")
            % {"path": configuration.sendmail_path, "status": backend.last_returncode},
            started=started,
            transcript=transcript,
        )
    code, text = client.last_data_reply
    return _report(
        configuration,
        ok=True,
        verdict=_("Test mail accepted by the server: %(reply)s") % {"reply": _reply(code, text)},
        started=started,
        transcript=transcript,
        reply=(code, text),
    )
