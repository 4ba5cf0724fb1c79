"""A mailer session: an open way to hand mail to the mail system, SMTP or sendmail.

``open_session()`` opens one for a configuration; ``send_raw()`` sends one ready-made
mail (bare envelope addresses, the message as bytes) and returns what the mail system
said, redacted; ``close()`` says goodbye, ``hang_up()`` drops the connection without a
word (the server may be hung). The delivery engine and the test mail both send through
it, so the test takes the engine's code path.
"""

from __future__ import annotations

import abc
import contextlib
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr

from django.core.mail.message import sanitize_address
from django.core.mail.utils import DNS_NAME
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from calmail.common.fields import reveal_secret
from smtpconfig.models import AuthMethod, Mailer, Security, SmtpConfiguration
from smtpconfig.transport import oauth, pipelining
from smtpconfig.transport.sendmail import run_sendmail
from smtpconfig.transport.smtp import TranscriptSMTP, TranscriptSMTP_SSL, build_ssl_context
from smtpconfig.transport.transcript import Direction, TranscriptLine
from smtpconfig.transport.verdicts import redact, refused_summary


@dataclass(frozen=True, slots=True)
class Sent:
    """The mail system took a mail. Every text is redacted."""

    # The server's reply to the content (SMTP); None and "" for sendmail.
    reply_code: int | None = None
    reply_text: str = ""
    # Recipients the server refused while taking the mail for the others:
    # "address: code text; …", or "" when it took every one.
    refused: str = ""
    # sendmail's exit status; None for SMTP.
    exit_status: int | None = None


class MailerSession(abc.ABC):
    """What the delivery engine and the test mail send through.

    Failures surface as the exceptions of smtplib, the sockets and sendmail
    (SendmailError, SendmailTimeout); ``assess_failure()`` says what one means for the mail.
    """

    # A network connection (counted in the delivery statistics); sendmail is a local program.
    network: bool = False

    def __init__(
        self,
        configuration: SmtpConfiguration,
        *,
        transcript: list[TranscriptLine] | None = None,
    ):
        self.configuration = configuration
        # A list receives the session's lines (password masked); None records nothing.
        self.transcript = transcript
        # Mails handed over (or tried) on this session.
        self.sent = 0

    def open(self) -> None:  # noqa: B027 (sendmail has nothing to open)
        """Get ready to send; raises what went wrong (the caller hangs up)."""

    @abc.abstractmethod
    def send_raw(self, sender: str, recipients: Sequence[str], data: bytes) -> Sent:
        """Send one mail: ``data`` as it goes on the wire, to the bare envelope addresses."""

    @property
    def broken(self) -> bool:
        """The connection is gone (a timeout, a network error, a 421): open a new session."""
        return False

    @property
    def worn_out(self) -> bool:
        """Enough mails went over this connection: open a new one for the next."""
        return False

    def close(self) -> None:  # noqa: B027 (nothing to say goodbye to for sendmail)
        """Say goodbye (QUIT) where the connection is still in order, then drop it. Never
        raises: the mails are handed over already, a failed goodbye changes nothing."""

    def hang_up(self) -> None:  # noqa: B027 (nothing to drop for sendmail)
        """Drop the connection without a word to the server (it may be hung)."""

    def __enter__(self) -> MailerSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SmtpSession(MailerSession):
    """One SMTP connection: TLS and AUTH as configured, mails pipelined where offered."""

    network = True

    def __init__(
        self,
        configuration: SmtpConfiguration,
        *,
        transcript: list[TranscriptLine] | None = None,
        deadline: float | None = None,
        fresh_token: bool = False,
    ):
        super().__init__(configuration, transcript=transcript)
        # A time.monotonic() value that bounds the whole session (the connection test).
        self.deadline = deadline
        # OAuth: ask the identity provider even if a cached token is still valid (the
        # connection test checks the credentials, not the cache).
        self.fresh_token = fresh_token
        self.client: TranscriptSMTP | TranscriptSMTP_SSL | None = None

    def open(self) -> None:
        """Connect (implicit TLS for SSL/TLS), EHLO, STARTTLS and EHLO again, AUTH when
        configured. Certificates are verified (system CAs plus
        settings.CALMAIL_SMTP_CA_FILE) unless ``verify_certificate`` is off.

        Raises SecretDecryptionError (before connecting) when the stored password cannot be
        read, CaFileError when the CA file cannot."""
        configuration = self.configuration
        use_password = configuration.smtp_auth and configuration.auth_method == AuthMethod.PASSWORD
        password = reveal_secret(configuration.password) if use_password else ""
        # The token comes first: no connection idles at the server while the identity
        # provider answers, and a provider that is down costs the server nothing.
        token = self._access_token() if configuration.uses_oauth else None
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
        self.client = client = client_class(
            local_hostname=DNS_NAME.get_fqdn(),
            timeout=configuration.timeout,
            transcript=self.transcript,
            deadline=self.deadline,
            **options,
        )
        code, message = client.connect(configuration.host, configuration.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, message)
        client.ehlo_or_helo_if_needed()
        if configuration.security == Security.STARTTLS:
            client.starttls(context=context)
            client.ehlo_or_helo_if_needed()
        if token is not None:
            try:
                client.xoauth2(configuration.username.strip(), token.token)
            except smtplib.SMTPAuthenticationError:
                # Revoked, or the app lost its rights: the next session asks for a new one.
                oauth.forget_token(configuration, token.token)
                raise
        elif use_password:
            client.login(configuration.username, password)

    def _access_token(self) -> oauth.AccessToken:
        """The OAuth access token, with a transcript line on where it came from (never
        the token itself)."""
        configuration = self.configuration
        started = time.monotonic()
        try:
            token = oauth.get_access_token(configuration, force=self.fresh_token)
        except oauth.OAuthError as exc:
            self._note(
                _("Token request to %(host)s failed after %(seconds)s s")
                % {"host": exc.provider or "?", "seconds": f"{time.monotonic() - started:.2f}"}
            )
            raise
        values = {
            "host": token.endpoint_host,
            "scopes": token.scopes or "-",
            "expires": formats.date_format(timezone.localtime(token.expires_at), "DATETIME_FORMAT"),
        }
        if token.duration is None:
            self._note(
                _("Access token from the cache (%(host)s): %(scopes)s; valid until %(expires)s")
                % values
            )
        else:
            self._note(
                _(
                    "Access token from %(host)s in %(seconds)s s: %(scopes)s; valid until %(expires)s"
                )
                % {**values, "seconds": f"{token.duration:.2f}"}
            )
        return token

    def _note(self, text: str) -> None:
        if self.transcript is not None:
            self.transcript.append(TranscriptLine(Direction.INFO, text))

    def send_raw(self, sender: str, recipients: Sequence[str], data: bytes) -> Sent:
        self.sent += 1
        # Pipelined (one round trip for the envelope, one for the content) where the
        # server offers it: on a fast network the round trips, not the bytes, set the pace.
        if self.client is None:
            raise RuntimeError("send_raw() before open()")
        refused, (code, text) = pipelining.send_mail(self.client, sender, recipients, data)
        configuration = self.configuration
        return Sent(
            reply_code=code,
            reply_text=redact(text, configuration),
            refused=refused_summary(refused, configuration) if refused else "",
        )

    @property
    def broken(self) -> bool:
        # smtplib closes the socket after a timeout, a network error or a 421.
        return self.client is None or self.client.sock is None

    @property
    def worn_out(self) -> bool:
        return self.sent >= self.configuration.max_messages_per_connection

    def close(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            if client.sock is not None:
                with contextlib.suppress(Exception):
                    client.quit()
        finally:
            client.close()

    def hang_up(self) -> None:
        if self.client is not None:
            self.client.close()


class SendmailSession(MailerSession):
    """The local sendmail binary, run once per mail; whether it exists shows at the first."""

    def send_raw(self, sender: str, recipients: Sequence[str], data: bytes) -> Sent:
        self.sent += 1
        status = run_sendmail(
            self.configuration.sendmail_path,
            timeout=self.configuration.timeout,
            sender=sender,
            recipients=recipients,
            content=data,
            transcript=self.transcript,
        )
        return Sent(exit_status=status)


def open_session(
    configuration: SmtpConfiguration,
    *,
    transcript: list[TranscriptLine] | None = None,
) -> MailerSession:
    """An open session for ``configuration``; what went wrong is raised (after hanging up).

    Pass a list as ``transcript`` to have the session recorded into it (password masked).
    """
    session = make_session(configuration, transcript=transcript)
    try:
        session.open()
    except BaseException:
        session.hang_up()
        raise
    return session


def make_session(
    configuration: SmtpConfiguration,
    *,
    transcript: list[TranscriptLine] | None = None,
    deadline: float | None = None,
) -> MailerSession:
    """A session for ``configuration``, not yet opened (for callers that handle a failed
    open themselves, like the connection test)."""
    if configuration.mailer == Mailer.SENDMAIL:
        return SendmailSession(configuration, transcript=transcript)
    return SmtpSession(configuration, transcript=transcript, deadline=deadline)


def bare_address(address: str, encoding: str) -> str:
    """The addr-spec of an address ("Name <a@b>" -> "a@b"), IDNA-encoded like Django does."""
    # An ASCII address without a display name is already that; Django's parser would only
    # cost time, once per mail in the delivery engine.
    if address.isascii() and "<" not in address:
        return address
    return parseaddr(sanitize_address(address, encoding))[1]
