"""In-process SMTP servers for tests: plain, STARTTLS, implicit TLS, AUTH and failure modes.

Everything runs on 127.0.0.1 with a free port chosen by the operating system, so tests
can run in parallel and never need a real mail server. Typical use::

    def test_mail_arrives(smtp_server):
        ...send through smtp_server.host / smtp_server.port...
        assert smtp_server.messages[0].recipients == ["to@example.com"]

Also here: the fixtures and helpers that point calmail at these servers
(``smtp_configuration()``, ``sendmail_configuration()``, ``trust_test_ca``,
``fake_sendmail``).

Failure modes can be switched on a running server, e.g.
``smtp_server.fail_rcpt = (550, "5.1.1 User unknown")``; ``reset()`` clears them and
everything recorded so far.

Pitfall: calmail has a top-level package named ``mailbox`` that shadows the standard
library module, and ``aiosmtpd.handlers`` imports the standard one. That is why this
module writes its own small handler and never imports ``aiosmtpd.handlers``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email
import email.message
import email.policy
import hmac
import ipaddress
import logging
import secrets
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
    syntax,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.clock import real_time

Reply = tuple[int, str]
TlsMode = Literal["none", "starttls", "ssl"]

LOCALHOST = "127.0.0.1"
# A stand-in for /usr/sbin/sendmail, see the fake_sendmail fixture.
FAKE_SENDMAIL = Path(__file__).parent / "bin" / "fake-sendmail"


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd itself sets the deprecated Session.login_data on every successful AUTH.
    return "login_data is deprecated" not in record.getMessage()


# aiosmtpd logs every connection and command at INFO; that drowns failure reports.
_aiosmtpd_log = logging.getLogger("mail.log")
_aiosmtpd_log.setLevel(logging.WARNING)
_aiosmtpd_log.addFilter(_not_login_data_deprecation)


def format_reply(reply: Reply) -> str:
    code, text = reply
    return f"{code} {text}"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted with 250 after DATA."""

    sender: str
    recipients: list[str]
    raw: bytes
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """The plain-text body (the text/plain part of a multipart message)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


@dataclass(frozen=True)
class AuthAttempt:
    """An AUTH exchange as the server saw it. The password is deliberately not kept."""

    mechanism: str
    username: str
    success: bool


@dataclass(frozen=True)
class Credentials:
    username: str
    # repr=False: pytest prints fixture values in failure reports.
    password: str = field(repr=False)


@dataclass(frozen=True)
class CertificateFiles:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def generate_certificates(directory: Path) -> CertificateFiles:
    """Write a CA certificate and a server certificate (with key) signed by it to directory.

    A separate CA, rather than one self-signed leaf, is what real deployments with an
    internal CA look like, and it passes OpenSSL's strict X.509 checks.
    """
    # OpenSSL checks validity against the real clock, which time_machine does not move (a
    # test, or CALMAIL_TEST_CLOCK, may have travelled days away): date them from it.
    now = datetime.datetime.fromtimestamp(real_time(), datetime.UTC)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calmail test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOCALHOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    files = CertificateFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class _Handler:
    """aiosmtpd handler hooks; all state lives on the SmtpTestServer."""

    def __init__(self, server: SmtpTestServer):
        self.server = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # With an EHLO hook aiosmtpd leaves remembering the client's name to us.
        session.host_name = hostname
        if not self.server.auth_enabled:
            # aiosmtpd advertises AUTH even without an authenticator; a server without
            # credentials should not, so "AUTH not offered" can be tested.
            responses = [line for line in responses if not line[4:].upper().startswith("AUTH")]
        if self.server.pipelining:
            # aiosmtpd reads commands from a stream, so it copes with pipelined input; it
            # just never advertises the extension (RFC 2920). The last line ends the reply.
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.server.senders_seen.append(address)
        drop_after = self.server.drop_after_messages
        if drop_after is not None and smtp.messages_accepted >= drop_after:
            # Hang up without a reply, like a server that restarts or drops idle clients;
            # connection_lost() then cancels this handler while it waits.
            smtp.transport.close()
            await asyncio.Event().wait()
        if self.server.fail_mail is not None:
            return format_reply(self.server.fail_mail)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.server.recipients_seen.append(address)
        reply = self.server.reject_recipients.get(address) or self.server.fail_rcpt
        if reply is not None:
            return format_reply(reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        server = self.server
        # The message's content has arrived and the client waits for the reply.
        server.data_in_flight += 1
        server.most_data_in_flight = max(server.most_data_in_flight, server.data_in_flight)
        try:
            return await self._answer_data(smtp, envelope)
        finally:
            # Also when the client went away meanwhile (the handler is cancelled then).
            server.data_in_flight -= 1

    async def _answer_data(self, smtp: SMTP, envelope: Envelope) -> str:
        if self.server.before_data_reply is not None:
            # In the server's thread, while the client waits for the reply.
            self.server.before_data_reply()
        if self.server.fail_data is not None:
            return format_reply(self.server.fail_data)
        raw = envelope.original_content or b""
        smtp.messages_accepted += 1
        self.server.messages.append(
            ReceivedMessage(
                sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                raw=raw,
                message=email.message_from_bytes(raw, policy=email.policy.default),
            )
        )
        if self.server.data_delay > 0:
            # Stored (received), but the client hears 250 only later, like a server that
            # takes its time to queue a mail; the other sessions go on meanwhile.
            await asyncio.sleep(self.server.data_delay)
        if self.server.data_reply is not None:
            return format_reply(self.server.data_reply)
        return f"250 2.0.0 Ok: queued as {secrets.token_hex(5).upper()}"

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 as Exchange Online and Gmail speak it: accepts only a valid token
        of the server's identity provider (``xoauth2``)."""
        provider = self.server.xoauth2
        assert provider is not None, "XOAUTH2 is offered only with an identity provider"
        if len(args) == 1:
            blob = await smtp.challenge_auth("")
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=False)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                await smtp.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        fields = dict(
            part.split("=", 1)
            for part in blob.decode(errors="replace").split("\x01")
            if "=" in part
        )
        user = fields.get("user", "")
        scheme, _, token = fields.get("auth", "").partition(" ")
        success = scheme == "Bearer" and provider.accepts(token)
        self.server.auth_attempts.append(
            AuthAttempt(mechanism="XOAUTH2", username=user, success=success)
        )
        if success:
            return AuthResult(success=True, auth_data=user)
        if self.server.xoauth2_error_challenge:
            # Gmail's way: the error as a JSON challenge, then 535 after the empty reply.
            await smtp.challenge_auth(
                '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
            )
            return AuthResult(
                success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
            )
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def handle_exception(self, error: Exception) -> str:
        # A client that rejects our certificate aborts the STARTTLS handshake: expected in
        # tests, so not worth a traceback. Anything else is a bug worth seeing.
        if not isinstance(error, TLSSetupException):
            _aiosmtpd_log.error("Test SMTP server error", exc_info=error)
        return f"500 Error: ({type(error).__name__}) {error}"


class _SmtpProtocol(SMTP):
    """aiosmtpd's SMTP with a switchable greeting and connection tracking."""

    def __init__(self, handler: _Handler, *, auth_required: bool, **kwargs):
        # auth_required is applied after __init__ because aiosmtpd warns about AUTH
        # without TLS, which tests set up on purpose (and warnings fail tests).
        super().__init__(handler, auth_required=False, **kwargs)
        self._auth_required = auth_required
        self._test_server = handler.server
        self.messages_accepted = 0
        # False for aiosmtpd's start-up probe (made before start() returned): not a session.
        self._counts_as_session = self._test_server._counting_sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:
            self._test_server._connections.add(self)
            self._test_server.connections_made += 1
            if self._counts_as_session:
                self._test_server._session_opened(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._test_server._connections.discard(self)
        self._test_server._session_closed(self)
        super().connection_lost(error)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg: str) -> None:
        # The session ends with QUIT, before the client hears 221 (and may open another).
        if not arg:
            self._test_server._session_closed(self)
        await super().smtp_QUIT(arg)

    def data_received(self, data: bytes) -> None:
        # One call per chunk the event loop read from the socket: how tests see whether
        # commands arrived together (pipelined) or one by one.
        self._test_server.reads.append(data)
        super().data_received(data)

    async def _handle_client(self) -> None:
        reply = self._test_server.fail_greeting
        if reply is None:
            await super()._handle_client()
            return
        await self.push(format_reply(reply))
        assert self.transport is not None
        self.transport.close()


class _Controller(Controller):
    def __init__(self, test_server: SmtpTestServer, *, auth_required: bool, **kwargs):
        super().__init__(_Handler(test_server), hostname=LOCALHOST, port=0, **kwargs)
        self._auth_required = auth_required

    def factory(self) -> SMTP:
        return _SmtpProtocol(
            self.handler, auth_required=self._auth_required, loop=self.loop, **self.SMTP_kwargs
        )

    def _trigger_server(self) -> None:
        # port=0 let the OS pick a free port; aiosmtpd's start-up probe needs the real one.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpTestServer:
    """An aiosmtpd server in a background thread, recording what it receives.

    tls: "none" (plain SMTP), "starttls" (offers STARTTLS; ``require_starttls`` refuses
    mail before it) or "ssl" (implicit TLS, SMTPS). Certificates come from
    ``certificates``; ``ca_file`` is the CA a client must trust.

    AUTH PLAIN and LOGIN are offered when ``username``/``password`` are given (limit with
    ``auth_mechanisms``). ``auth_require_tls`` defaults to True for STARTTLS servers and
    False otherwise (aiosmtpd does not count implicit TLS as TLS for that check).

    Failure modes, switchable while the server runs (a (code, text) tuple or None):
    ``fail_greeting`` (answer the connection with it and hang up), ``fail_mail``,
    ``fail_rcpt``, ``reject_recipients`` (address -> reply) and ``fail_data``;
    ``drop_after_messages`` (an int or None) hangs up without a reply at the MAIL command
    that follows that many accepted messages on a connection. ``connections_made`` counts
    the connections clients opened. ``before_data_reply`` (a callable or None) runs after
    a message's content arrived and before the server answers it. ``data_reply`` (a 250
    reply or None) accepts a message with that reply instead of "250 2.0.0 Ok: queued as …".

    ``auth_failure_reply`` (a str or None, switchable) answers a failed AUTH with that
    reply instead of aiosmtpd's "535 5.7.8 Authentication credentials invalid", filled
    with what the client sent: ``{username}``, ``{password}``, ``{password_b64}`` (the
    password in base64, as AUTH LOGIN sends it) and ``{plain_b64}`` (the AUTH PLAIN
    blob). Like a server that echoes credentials, e.g.
    ``"535 5.7.8 Authentication failed for {username} {password}"``.

    ``pipelining`` (default False, switchable) advertises PIPELINING (RFC 2920) in the
    EHLO reply. ``reads`` lists the chunks of client data in the order the server read
    them from the socket (after TLS decryption); a chunk holding several commands means
    the client sent them in one write.

    ``data_delay`` (seconds, default 0: answer at once; switchable, kept by ``reset()``)
    stores each accepted message and then waits that long before its 250, without
    blocking the other sessions: a slow server, for tests of parallel sessions.
    ``open_sessions`` counts the client sessions open now (from the connection to QUIT
    or hang-up) and ``most_sessions_at_once`` the most open at one time;
    ``data_in_flight`` counts the messages whose content arrived and whose reply was not
    yet given, ``most_data_in_flight`` the most at one time. ``reset()`` restarts both
    maxima from the current figures.
    """

    host = LOCALHOST

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        certificates: CertificateFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
        auth_required: bool = False,
        auth_require_tls: bool | None = None,
        require_starttls: bool = False,
        hostname: str = "mail.calmail.test",
        pipelining: bool = False,
        data_delay: float = 0.0,
        xoauth2: FakeIdentityProvider | None = None,
    ):
        if tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"Unknown tls mode {tls!r}.")
        if tls != "none" and certificates is None:
            raise ValueError("TLS needs certificates, see generate_certificates().")
        if (username is None) != (password is None):
            raise ValueError("Give both username and password, or neither.")
        self.tls = tls
        self.certificates = certificates
        self.username = username
        self._password = password
        # AUTH XOAUTH2 with tokens of this identity provider (see FakeIdentityProvider).
        self.xoauth2 = xoauth2
        # Answer a refused token with a JSON challenge first, as Gmail does (switchable).
        self.xoauth2_error_challenge = False
        self.auth_mechanisms = tuple(mechanism.upper() for mechanism in auth_mechanisms)
        if username is None:
            self.auth_mechanisms = ()
        if xoauth2 is not None:
            self.auth_mechanisms = (*self.auth_mechanisms, "XOAUTH2")
        self.pipelining = pipelining

        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.senders_seen: list[str] = []
        self.recipients_seen: list[str] = []
        self.reads: list[bytes] = []
        self.fail_greeting: Reply | None = None
        self.fail_mail: Reply | None = None
        self.fail_rcpt: Reply | None = None
        self.fail_data: Reply | None = None
        self.data_reply: Reply | None = None
        self.auth_failure_reply: str | None = None
        self.reject_recipients: dict[str, Reply] = {}
        self.drop_after_messages: int | None = None
        self.before_data_reply: Callable[[], None] | None = None
        self.connections_made = 0
        self._connections: set[_SmtpProtocol] = set()
        self.data_delay = data_delay
        self.data_in_flight = 0
        self.most_data_in_flight = 0
        self.most_sessions_at_once = 0
        self._sessions: set[_SmtpProtocol] = set()
        self._counting_sessions = False

        if auth_require_tls is None:
            auth_require_tls = tls == "starttls"
        options: dict = {
            "server_hostname": hostname,
            "ident": "calmail test server",
            "auth_require_tls": auth_require_tls,
            "auth_exclude_mechanism": [
                mechanism
                for mechanism in ("PLAIN", "LOGIN", "XOAUTH2")
                if mechanism not in self.auth_mechanisms
            ],
        }
        if self.auth_enabled:
            options["authenticator"] = self._authenticate
        if tls == "starttls":
            options["tls_context"] = certificates.server_context()
            options["require_starttls"] = require_starttls
        elif tls == "ssl":
            options["ssl_context"] = certificates.server_context()
        self._controller = _Controller(self, auth_required=auth_required, **options)
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"<SmtpTestServer tls={self.tls} {self.host}:{self.port} auth={self.auth_enabled}>"

    @property
    def auth_enabled(self) -> bool:
        return self.username is not None or self.xoauth2 is not None

    @property
    def ca_file(self) -> Path | None:
        return self.certificates.ca_file if self.certificates else None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    def _session_opened(self, protocol: _SmtpProtocol) -> None:
        self._sessions.add(protocol)
        self.most_sessions_at_once = max(self.most_sessions_at_once, len(self._sessions))

    def _session_closed(self, protocol: _SmtpProtocol) -> None:
        self._sessions.discard(protocol)

    def start(self) -> SmtpTestServer:
        self._controller.start()
        self.port = self._controller.port
        # aiosmtpd's start-up probe was a connection too; count only the clients'.
        self.connections_made = 0
        self.reads.clear()
        self._counting_sessions = True
        return self

    def stop(self) -> None:
        loop = self._controller.loop
        if loop.is_running():
            # Close client connections first so no transport is left for the garbage
            # collector to warn about.
            asyncio.run_coroutine_threadsafe(self._close_connections(), loop).result(timeout=5)
        self._controller.stop()

    async def _close_connections(self) -> None:
        for protocol in list(self._connections):
            if protocol.transport is not None:
                protocol.transport.close()
        for _ in range(50):
            if not self._connections:
                return
            await asyncio.sleep(0.01)

    def reset(self) -> None:
        """Forget what was received and switch every failure mode off."""
        self.messages.clear()
        self.auth_attempts.clear()
        self.senders_seen.clear()
        self.recipients_seen.clear()
        self.reads.clear()
        self.fail_greeting = self.fail_mail = self.fail_rcpt = self.fail_data = None
        self.data_reply = None
        self.auth_failure_reply = None
        self.reject_recipients.clear()
        self.drop_after_messages = None
        self.before_data_reply = None
        self.connections_made = 0
        self.most_sessions_at_once = len(self._sessions)
        self.most_data_in_flight = self.data_in_flight

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.username is None:
            return AuthResult(success=False, handled=False)
        assert self._password is not None
        success = hmac.compare_digest(
            auth_data.login, self.username.encode()
        ) and hmac.compare_digest(auth_data.password, self._password.encode())
        self.auth_attempts.append(
            AuthAttempt(
                mechanism=mechanism,
                username=auth_data.login.decode(errors="replace"),
                success=success,
            )
        )
        message = None
        if not success and self.auth_failure_reply is not None:
            message = self.auth_failure_reply.format(
                username=auth_data.login.decode(errors="replace"),
                password=auth_data.password.decode(errors="replace"),
                password_b64=base64.b64encode(auth_data.password).decode(),
                plain_b64=base64.b64encode(
                    b"\0" + auth_data.login + b"\0" + auth_data.password
                ).decode(),
            )
        return AuthResult(
            success=success, handled=False, message=message, auth_data=auth_data.login
        )


class SilentServer:
    """A TCP listener that accepts connections and never sends a byte: a hung mail server."""

    host = LOCALHOST

    def __init__(self):
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-smtp", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        for connection in self._connections:
            connection.close()
        self._listener.close()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def smtp_configuration(server, **overrides):
    """An unsaved SmtpConfiguration that delivers to a test server (plain SMTP unless the
    server speaks TLS)."""
    from smtpconfig.models import Mailer, Security, SmtpConfiguration

    security = {"none": Security.NONE, "starttls": Security.STARTTLS, "ssl": Security.SSL}
    values = {
        "name": "Test server",
        "mailer": Mailer.SMTP,
        "host": server.host,
        "port": server.port,
        "security": security[getattr(server, "tls", "none")],
        "timeout": 5,
    }
    values.update(overrides)
    return SmtpConfiguration(**values)


def sendmail_configuration(path, **overrides):
    """An unsaved SmtpConfiguration that pipes mail to the sendmail binary at ``path``."""
    from smtpconfig.models import Mailer, SmtpConfiguration

    values = {
        "name": "Local sendmail",
        "mailer": Mailer.SENDMAIL,
        "sendmail_path": str(path),
        "timeout": 5,
    }
    values.update(overrides)
    return SmtpConfiguration(**values)


def unused_port() -> int:
    """A port nothing listens on (free at the time of the call), for "connection refused"."""
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


# Fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return generate_certificates(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_credentials() -> Credentials:
    """Username "mailer" with a password generated per test."""
    return Credentials(username="mailer", password=secrets.token_urlsafe(16))


@pytest.fixture
def smtp_server_factory(
    smtp_certificates: CertificateFiles,
) -> Iterator[Callable[..., SmtpTestServer]]:
    """Start SmtpTestServer(**options) servers; all are stopped at teardown.

    ``credentials=`` (a Credentials) is accepted as a shortcut for username/password.
    """
    servers: list[SmtpTestServer] = []

    def start(*, credentials: Credentials | None = None, **options) -> SmtpTestServer:
        options.setdefault("certificates", smtp_certificates)
        if credentials is not None:
            options.update(username=credentials.username, password=credentials.password)
        server = SmtpTestServer(**options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory) -> SmtpTestServer:
    """Plain SMTP, no TLS, no AUTH."""
    return smtp_server_factory()


@pytest.fixture
def smtp_server_starttls(smtp_server_factory) -> SmtpTestServer:
    """Offers STARTTLS (not required); certificate signed by ``.ca_file``."""
    return smtp_server_factory(tls="starttls")


@pytest.fixture
def smtp_server_tls(smtp_server_factory) -> SmtpTestServer:
    """Implicit TLS (SMTPS); certificate signed by ``.ca_file``."""
    return smtp_server_factory(tls="ssl")


@pytest.fixture
def smtp_server_auth(smtp_server_factory, smtp_credentials: Credentials) -> SmtpTestServer:
    """STARTTLS required, AUTH PLAIN/LOGIN after it with ``smtp_credentials``."""
    return smtp_server_factory(
        tls="starttls", credentials=smtp_credentials, require_starttls=True, auth_required=True
    )


@pytest.fixture
def trust_test_ca(settings, smtp_certificates: CertificateFiles) -> None:
    """calmail trusts the CA that signed the test servers' certificates."""
    settings.CALMAIL_SMTP_CA_FILE = str(smtp_certificates.ca_file)


@pytest.fixture
def fake_sendmail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An executable copy of tests/bin/fake-sendmail; what it receives (``argv``,
    ``stdin``) lands in its folder. FAKE_SENDMAIL_EXIT makes it fail with that status."""
    folder = tmp_path / "sendmail"
    folder.mkdir()
    binary = folder / "sendmail"
    shutil.copy(FAKE_SENDMAIL, binary)
    binary.chmod(0o755)
    monkeypatch.setenv("FAKE_SENDMAIL_DIR", str(folder))
    return binary


@pytest.fixture
def silent_smtp_server() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


# OAuth 2.0: a fake identity provider ------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """A POST to one of the fake's token endpoints. Secrets are deliberately not kept."""

    provider: Literal["microsoft", "google", "generic"]
    client: str
    success: bool


def _rsa_key_and_certificate(common_name: str) -> tuple[str, str]:
    """A fresh RSA key (PEM, PKCS#8) and a self-signed certificate for it (PEM)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.fromtimestamp(real_time(), datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM).decode()


class FakeIdentityProvider:
    """HTTPS token endpoints on 127.0.0.1 for the three OAuth sign-in methods, with tokens
    the test SMTP server's AUTH XOAUTH2 accepts (``SmtpTestServer(xoauth2=provider)``).

    - Microsoft (what MSAL asks): ``GET /<tenant>/v2.0/.well-known/openid-configuration``
      and ``POST /<tenant>/oauth2/v2.0/token`` with client credentials: ``client_secret``
      or a certificate assertion (a JWT signed with ``certificate_pem``'s key). Errors as
      Entra words them (``AADSTS7000215`` for a wrong secret, ...). Set
      ``settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY = provider.url``.
    - Google: ``POST /google/token`` with a service account's JWT assertion (RFC 7523);
      ``service_account_json()`` is the key file, its ``token_uri`` pointing here.
      ``delegation = False`` refuses it as Google does without domain-wide delegation.
    - Generic: ``POST /generic/token`` with client credentials (HTTP Basic or body).

    Tokens are opaque to the SMTP server: ``accepts(token)`` is True only for a token this
    provider issued and that has not expired (``time.time()``, so time_machine moves it).
    ``token_requests`` lists every token POST; ``expires_in`` (seconds) is the lifetime of
    the next tokens; ``outage`` (an HTTP status, or None) answers everything with it;
    ``delay`` (seconds) waits before answering a token POST; ``hang`` never answers (until
    stop()). All switchable while it runs.
    """

    host = LOCALHOST
    tenant = "8f2b1c9e-calmail-test-tenant"
    client_id = "0d6c3a52-calmail-test-app"
    google_client_email = "calmail-mailer@calmail-test.iam.gserviceaccount.com"
    generic_scope = "smtp.send"

    def __init__(self, certificates: CertificateFiles):
        self.certificates = certificates
        self.client_secret = "S3cr~" + secrets.token_urlsafe(24)
        self._certificate_key_pem: str | None = None
        self._certificate_pem: str | None = None
        self._google_key_pem, _ = _rsa_key_and_certificate("google service account")
        self.delegation = True
        self.expires_in = 3600
        self.outage: int | None = None
        self.delay = 0.0
        self.hang = False
        self.token_requests: list[TokenRequest] = []
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: object | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # What a configuration needs ---------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def microsoft_token_url(self) -> str:
        return f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    @property
    def google_token_uri(self) -> str:
        return f"{self.url}/google/token"

    @property
    def generic_token_url(self) -> str:
        return f"{self.url}/generic/token"

    @property
    def certificate_pem(self) -> str:
        """Private key and certificate of the app registration, in one PEM text."""
        if self._certificate_pem is None:
            self._certificate_key_pem, self._certificate_pem = _rsa_key_and_certificate(
                "calmail app"
            )
        assert self._certificate_key_pem is not None
        return self._certificate_key_pem + self._certificate_pem

    def service_account_json(self, *, private_key: str | None = None) -> str:
        import json

        return json.dumps(
            {
                "type": "service_account",
                "project_id": "calmail-test",
                "private_key_id": "0123456789abcdef",
                "private_key": private_key or self._google_key_pem,
                "client_email": self.google_client_email,
                "client_id": "104857600000000000001",
                "token_uri": self.google_token_uri,
            }
        )

    def accepts(self, token: str) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and time.time() < expires

    def requests_for(self, provider: str) -> list[TokenRequest]:
        return [request for request in self.token_requests if request.provider == provider]

    # Serving ------------------------------------------------------------------------------

    def start(self) -> FakeIdentityProvider:
        from http.server import ThreadingHTTPServer

        server = ThreadingHTTPServer((self.host, 0), _identity_handler(self))
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeIdentityProvider:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # Issuing ------------------------------------------------------------------------------

    def _issue(self, claims: dict) -> str:
        import jwt

        # A JWT like Entra's (calmail shows its roles); only this provider's list makes
        # it valid, so a token of another provider, or a forged one, is refused.
        token = jwt.encode(
            {**claims, "jti": secrets.token_hex(8), "exp": int(time.time()) + self.expires_in},
            secrets.token_bytes(32),
            algorithm="HS256",
        )
        with self._lock:
            self._tokens[token] = time.time() + self.expires_in
        return token

    def _token_response(self, claims: dict, **extra) -> tuple[int, dict]:
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "access_token": self._issue(claims),
            **extra,
        }

    def _microsoft(self, tenant: str, form: dict[str, str]) -> tuple[int, dict]:
        import jwt

        client = form.get("client_id", "")

        def refused(status: int, error: str, code: str, text: str) -> tuple[int, dict]:
            return status, {
                "error": error,
                "error_description": f"{code}: {text} Trace ID: 0000 Correlation ID: 1111",
                "error_codes": [int(code[6:])],
            }

        if tenant != self.tenant:
            return refused(400, "invalid_request", "AADSTS90002", f"Tenant '{tenant}' not found.")
        if client != self.client_id:
            return refused(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client}' was not found in the directory.",
            )
        if form.get("scope", "").split() != ["https://outlook.office365.com/.default"]:
            return refused(400, "invalid_scope", "AADSTS70011", "The provided scope is not valid.")
        if "client_assertion" in form:
            try:
                assert self._certificate_pem is not None
                public_key = x509.load_pem_x509_certificate(
                    self._certificate_pem.encode()
                ).public_key()
                jwt.decode(
                    form["client_assertion"],
                    public_key,  # type: ignore[arg-type]
                    algorithms=["PS256", "RS256"],
                    audience=self.microsoft_token_url,
                    issuer=self.client_id,
                )
            except (AssertionError, jwt.PyJWTError):
                return refused(
                    401,
                    "invalid_client",
                    "AADSTS700027",
                    "The certificate with identifier used to sign the client assertion is not registered on application.",
                )
        elif not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            return refused(
                401,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )
        return self._token_response(
            {"aud": "https://outlook.office365.com", "appid": client, "roles": ["SMTP.SendAsApp"]},
            ext_expires_in=self.expires_in,
        )

    def _google(self, form: dict[str, str]) -> tuple[int, dict]:
        import jwt
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        public_key = load_pem_private_key(self._google_key_pem.encode(), None).public_key()
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                # google-auth names Google's endpoint, whatever the key's token_uri says.
                audience=["https://oauth2.googleapis.com/token", self.google_token_uri],
            )
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if claims.get("iss") != self.google_client_email or not claims.get("sub"):
            return 400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
        if not self.delegation or claims.get("scope") != "https://mail.google.com/":
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
            }
        return self._token_response({"sub": claims["sub"]})

    def _generic(self, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        client, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            from urllib.parse import unquote

            decoded = base64.b64decode(authorization[6:]).decode()
            client, _, secret = decoded.partition(":")
            client, secret = unquote(client), unquote(secret)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client != self.client_id or not hmac.compare_digest(secret, self.client_secret):
            return 401, {
                "error": "invalid_client",
                "error_description": "Client authentication failed.",
            }
        return self._token_response({"client": client}, scope=form.get("scope", ""))


def _identity_handler(provider: FakeIdentityProvider):
    import json
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import parse_qsl

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args) -> None:
            # Quiet: pytest shows the requests a test counts, not an access log.
            pass

        def _answer(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if provider.outage is not None:
                self._answer(provider.outage, {"error": "temporarily_unavailable"})
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
                tenant = parts[0]
                if tenant != provider.tenant:
                    self._answer(400, {"error": "invalid_tenant"})
                    return
                base = f"{provider.url}/{tenant}"
                self._answer(
                    200,
                    {
                        "issuer": f"{base}/v2.0",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                    },
                )
                return
            self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:1] == ["google"]:
                kind, client = "google", provider.google_client_email
            elif parts[:1] == ["generic"]:
                kind, client = "generic", form.get("client_id", "")
            else:
                kind, client = "microsoft", form.get("client_id", "")
            if provider.hang:
                provider._stopping.wait(30)
                return
            if provider.delay:
                time.sleep(provider.delay)
            if provider.outage is not None:
                status, body = provider.outage, {"error": "temporarily_unavailable"}
            elif kind == "google":
                status, body = provider._google(form)
            elif kind == "generic":
                status, body = provider._generic(form, self.headers.get("Authorization", ""))
            else:
                status, body = provider._microsoft(parts[0], form)
            provider.token_requests.append(
                TokenRequest(provider=kind, client=client, success=status == 200)  # type: ignore[arg-type]
            )
            self._answer(status, body)

    return Handler


def oauth_configuration(
    server, provider: FakeIdentityProvider, method: str = "microsoft", **overrides
):
    """An unsaved SmtpConfiguration that signs in to ``server`` with OAuth tokens of
    ``provider`` (Microsoft 365 with a client secret unless told otherwise)."""
    from smtpconfig.models import AuthMethod

    values: dict = {
        "name": f"OAuth {method}",
        "smtp_auth": True,
        "auth_method": method,
        "username": "labor@example.com",
        "from_email": "labor@example.com",
    }
    if method == AuthMethod.MICROSOFT:
        values.update(
            oauth_tenant_id=provider.tenant,
            oauth_client_id=provider.client_id,
            oauth_client_secret=provider.client_secret,
        )
    elif method == AuthMethod.GOOGLE:
        values.update(oauth_service_account=provider.service_account_json())
    else:
        values.update(
            oauth_client_id=provider.client_id,
            oauth_client_secret=provider.client_secret,
            oauth_token_url=provider.generic_token_url,
            oauth_scope=provider.generic_scope,
        )
    values.update(overrides)
    return smtp_configuration(server, **values)


@pytest.fixture
def identity_provider(
    settings, smtp_certificates: CertificateFiles
) -> Iterator[FakeIdentityProvider]:
    """A FakeIdentityProvider over HTTPS (test CA), which calmail trusts and asks as
    Microsoft's sign-in host."""
    with FakeIdentityProvider(smtp_certificates) as provider:
        settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY = provider.url
        settings.CALMAIL_OAUTH_CA_FILE = str(smtp_certificates.ca_file)
        yield provider


@pytest.fixture
def smtp_server_oauth(smtp_server_factory, identity_provider, trust_test_ca) -> SmtpTestServer:
    """STARTTLS required, then only AUTH XOAUTH2 with ``identity_provider``'s tokens."""
    return smtp_server_factory(
        tls="starttls", xoauth2=identity_provider, require_starttls=True, auth_required=True
    )
