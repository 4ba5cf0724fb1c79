"""smtplib with calmail's TLS policy, a masked transcript and a deadline for the session."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.translation import gettext as _

from smtpconfig.transport.transcript import MASK, Direction, TranscriptLine

if TYPE_CHECKING:
    # The types typeshed gives smtplib.SMTP's parameters (overrides must accept them).
    from _socket import _Address
    from smtplib import _AuthObject

    from _typeshed import ReadableBuffer


class StartTlsNotOffered(smtplib.SMTPNotSupportedError):
    """STARTTLS is configured, but the server's EHLO does not offer it."""


class AuthNotOffered(smtplib.SMTPNotSupportedError):
    """SMTP auth is configured, but the server's EHLO does not offer AUTH."""


class NoCommonAuthMechanism(smtplib.SMTPException):
    """The server offers AUTH, but none of the mechanisms smtplib speaks."""

    def __init__(self, offered: str) -> None:
        self.offered = offered
        super().__init__(f"No supported AUTH mechanism; the server offers: {offered}")


class CaFileError(Exception):
    """settings.CALMAIL_SMTP_CA_FILE names a file that cannot be loaded."""


# TLS -----------------------------------------------------------------------------------


def build_ssl_context(*, verify_certificate: bool = True) -> ssl.SSLContext:
    """The TLS client context for SMTP: system CAs plus settings.CALMAIL_SMTP_CA_FILE.

    Certificate and host name are verified unless verify_certificate is False.
    """
    context = ssl.create_default_context()
    ca_file = settings.CALMAIL_SMTP_CA_FILE
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


# The mixin is only ever combined with smtplib.SMTP (below); type checkers get told so.
if TYPE_CHECKING:
    _SMTPBase = smtplib.SMTP
else:
    _SMTPBase = object


class _TranscriptMixin(_SMTPBase):
    """Records every command and reply of an smtplib session, masking AUTH.

    ``transcript`` (a list, or None to record nothing) receives TranscriptLines.
    ``deadline`` (a time.monotonic() value, or None) bounds the whole session: every
    read and write gets at most the time that is left.
    ``last_reply`` is the latest (code, text) from the server.
    """

    def __init__(
        self,
        *args: Any,
        transcript: list[TranscriptLine] | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.transcript = transcript
        self.deadline = deadline
        self.last_reply: tuple[int, str] | None = None
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

    def connect(
        self,
        host: str = "localhost",
        port: int = 0,
        source_address: _Address | None = None,
    ) -> tuple[int, bytes]:
        # smtplib only remembers the host (for TLS server_hostname) when connecting from
        # __init__; remember it here too so connect() can be called separately.
        self._host = host
        self._record(
            Direction.INFO, _("Connecting to %(host)s:%(port)s") % {"host": host, "port": port}
        )
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        remaining = self._remaining()
        if remaining is not None:
            timeout = min(timeout, remaining) if timeout else remaining
        # smtplib's private _get_socket is missing from typeshed.
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
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

    def send(self, s: ReadableBuffer | str) -> None:
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

    def auth(
        self,
        mechanism: str,
        authobject: _AuthObject,
        *,
        initial_response_ok: bool = True,
    ) -> tuple[int, bytes]:
        self._in_auth = True
        try:
            return super().auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        finally:
            self._in_auth = False

    def login(
        self, user: str, password: str, *, initial_response_ok: bool = True
    ) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise AuthNotOffered("SMTP AUTH extension not supported by server.")
        offered = self.esmtp_features["auth"].upper().split()
        if not set(offered) & {"CRAM-MD5", "PLAIN", "LOGIN"}:
            raise NoCommonAuthMechanism(" ".join(offered) or "-")
        return super().login(user, password, initial_response_ok=initial_response_ok)

    def xoauth2(self, user: str, token: str) -> tuple[int, bytes]:
        """AUTH XOAUTH2 with an OAuth 2.0 access token (Microsoft 365, Google Workspace)."""
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("auth"):
            raise AuthNotOffered("SMTP AUTH extension not supported by server.")
        offered = self.esmtp_features["auth"].upper().split()
        if "XOAUTH2" not in offered:
            raise NoCommonAuthMechanism(" ".join(offered) or "-")
        initial = f"user={user}\x01auth=Bearer {token}\x01\x01"

        def respond(challenge: bytes | None = None) -> str:
            # A refused token comes back as a 334 challenge carrying the error (Google);
            # an empty line ends the exchange and the server sends its final 5xx.
            return initial if challenge is None else ""

        return self.auth("XOAUTH2", respond, initial_response_ok=True)

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        if not self.has_extn("starttls"):
            raise StartTlsNotOffered("STARTTLS extension not supported by server.")
        result = super().starttls(*args, **kwargs)
        if isinstance(self.sock, ssl.SSLSocket):
            self._record_tls(self.sock)
        return result

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        # smtplib (sendmail) hands bytes or str, both sized; typeshed's Buffer is not.
        self._data_size = len(msg)  # type: ignore[arg-type]
        try:
            return super().data(msg)
        finally:
            self._data_size = None


class TranscriptSMTP(_TranscriptMixin, smtplib.SMTP):
    """smtplib.SMTP that records a masked transcript."""


class TranscriptSMTP_SSL(_TranscriptMixin, smtplib.SMTP_SSL):
    """smtplib.SMTP_SSL (implicit TLS) that records a masked transcript."""
