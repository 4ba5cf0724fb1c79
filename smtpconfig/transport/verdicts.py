"""What the mail system said, for people and for the delivery engine.

Every text that comes from the mail server or sendmail passes ``redact()`` before anyone
sees it: a server may quote the credentials it refused ("535 … failed for mailer
<password>"). ``describe_exception()`` turns an exception into a plain-language verdict;
``assess_failure()`` tells the delivery engine what a failed send means for the mail.
"""

from __future__ import annotations

import base64
import functools
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext_noop

from calmail.common.crypto import SecretDecryptionError
from calmail.common.fields import reveal_secret
from calmail.common.i18n import DeferredText
from smtpconfig.models import AuthMethod, Mailer, SmtpConfiguration
from smtpconfig.transport.oauth import (
    OAuthError,
    OAuthSetupError,
    TokenRefused,
    TokenServiceUnavailable,
)
from smtpconfig.transport.sendmail import SendmailError, SendmailTimeout
from smtpconfig.transport.smtp import (
    AuthNotOffered,
    CaFileError,
    NoCommonAuthMechanism,
    StartTlsNotOffered,
)
from smtpconfig.transport.transcript import MASK


def format_reply(code: int, message: bytes | str) -> str:
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
    for secret in (configuration.password, configuration.oauth_client_secret):
        try:
            plaintext = reveal_secret(secret)
        except SecretDecryptionError:
            # No plaintext here, so none that a server could have been sent either.
            continue
        if plaintext:
            text = _secret_pattern(configuration.username or "", plaintext).sub(MASK, text)
    return text


def describe_exception(exc: BaseException, configuration: SmtpConfiguration) -> str:
    """A plain-language verdict for an exception raised while talking to the mail system.

    It quotes the server's reply, so it is redacted like every server text.
    """
    return _shown(explain_exception(exc, configuration))


def _shown(text: DeferredText) -> str:
    # An empty hint or description leaves a double space in the sentence.
    return " ".join(text.render().split())


def explain_exception(exc: BaseException, configuration: SmtpConfiguration) -> DeferredText:
    """describe_exception() as msgid and parameters, to be stored and translated when read
    (the outbox shows a worker's error in the reader's language). Redacted."""
    return _describe_exception(exc, configuration).map_params(
        lambda text: redact(text, configuration)
    )


def _text(msgid: str, params: dict | None = None) -> DeferredText:
    # Parameters as JSON keeps them (the outbox stores them): exceptions, numbers as text.
    return DeferredText(
        msgid,
        {
            name: value if isinstance(value, DeferredText | int | str) else str(value)
            for name, value in (params or {}).items()
        },
    )


def _describe_exception(exc: BaseException, configuration: SmtpConfiguration) -> DeferredText:
    address = configuration.address
    seconds = configuration.timeout
    if isinstance(exc, SecretDecryptionError):
        if configuration.uses_oauth:
            return _text(
                gettext_noop(
                    "The stored client secret or key cannot be decrypted with the configured "
                    "keys. Enter it again, or restore the key it was encrypted with."
                )
            )
        return _text(
            gettext_noop(
                "The stored password cannot be decrypted with the configured keys. "
                "Enter the password again, or restore the key it was encrypted with."
            )
        )
    if isinstance(exc, OAuthError):
        return _describe_oauth_error(exc, configuration)
    if isinstance(exc, CaFileError):
        # Our own English text about a local file, not a msgid: shown as it is.
        return _text("%(error)s", {"error": str(exc)})
    if isinstance(exc, SendmailTimeout):
        return _text(gettext_noop("Timed out after %(seconds)s s"), {"seconds": seconds})
    if isinstance(exc, SendmailError):
        if exc.stderr_line:
            return _text(
                gettext_noop("sendmail failed with exit status %(status)s: %(error)s"),
                {"status": exc.returncode, "error": exc.stderr_line},
            )
        return _text(
            gettext_noop("sendmail failed with exit status %(status)s"), {"status": exc.returncode}
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        reply = format_reply(exc.smtp_code, exc.smtp_error)
        if configuration.uses_oauth:
            hint = _TOKEN_REFUSED_HINTS.get(configuration.auth_method, "")
            return _text(
                gettext_noop("The mail server refused the access token: %(reply)s. %(hint)s"),
                {"reply": reply, "hint": _text(hint) if hint else ""},
            )
        if "5.7.30" in reply or "basic authentication" in reply.lower():
            return _text(
                gettext_noop(
                    "Authentication failed: %(reply)s. Microsoft no longer accepts passwords: "
                    "switch this configuration to OAuth 2.0 (Microsoft 365)."
                ),
                {"reply": reply},
            )
        return _text(gettext_noop("Authentication failed: %(reply)s"), {"reply": reply})
    if isinstance(exc, smtplib.SMTPConnectError):
        return _text(
            gettext_noop("The server refused the connection: %(reply)s"),
            {"reply": format_reply(exc.smtp_code, exc.smtp_error)},
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _text(
            gettext_noop("Sender refused: %(reply)s"),
            {"reply": format_reply(exc.smtp_code, exc.smtp_error)},
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = next(iter(exc.recipients.values()), (0, b""))
        return _text(
            gettext_noop("Recipient refused: %(reply)s"), {"reply": format_reply(code, message)}
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return _text(
            gettext_noop("Message refused: %(reply)s"),
            {"reply": format_reply(exc.smtp_code, exc.smtp_error)},
        )
    if isinstance(exc, StartTlsNotOffered):
        return _text(gettext_noop("The server does not offer STARTTLS"))
    if isinstance(exc, AuthNotOffered):
        return _text(
            gettext_noop(
                "The server does not offer SMTP AUTH (some servers offer it only after STARTTLS)"
            )
        )
    if isinstance(exc, NoCommonAuthMechanism):
        return _text(
            gettext_noop(
                "The server offers no login method calmail supports (offered: %(mechanisms)s)"
            ),
            {"mechanisms": exc.offered},
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _text(gettext_noop("The server closed the connection unexpectedly"))
    if isinstance(exc, smtplib.SMTPResponseException):
        return _text(
            gettext_noop("The server answered: %(reply)s"),
            {"reply": format_reply(exc.smtp_code, exc.smtp_error)},
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _text(
            gettext_noop("Certificate not trusted: %(reason)s"),
            {"reason": exc.verify_message or exc.reason or exc},
        )
    if isinstance(exc, ssl.SSLError):
        return _text(
            gettext_noop("TLS handshake failed: %(reason)s"), {"reason": exc.reason or exc}
        )
    if isinstance(exc, TimeoutError):
        return _text(gettext_noop("Timed out after %(seconds)s s"), {"seconds": seconds})
    if isinstance(exc, ConnectionRefusedError):
        return _text(gettext_noop("Connection refused by %(address)s"), {"address": address})
    if isinstance(exc, socket.gaierror):
        return _text(
            gettext_noop("Host name could not be resolved: %(host)s"), {"host": configuration.host}
        )
    if configuration.mailer == Mailer.SENDMAIL and isinstance(exc, FileNotFoundError):
        return _text(
            gettext_noop("The sendmail binary %(path)s does not exist"),
            {"path": configuration.sendmail_path},
        )
    if configuration.mailer == Mailer.SENDMAIL and isinstance(exc, PermissionError):
        return _text(
            gettext_noop("The sendmail binary %(path)s is not executable"),
            {"path": configuration.sendmail_path},
        )
    if isinstance(exc, OSError) and exc.strerror:
        return _text(
            gettext_noop("Network error with %(address)s: %(reason)s"),
            {"address": address, "reason": exc.strerror},
        )
    return _text(
        gettext_noop("Unexpected error: %(error)s"), {"error": f"{type(exc).__name__}: {exc}"}
    )


# OAuth -----------------------------------------------------------------------------------

# Msgids (gettext_noop): the verdict stores them and translates them when read.
_TOKEN_REFUSED_HINTS: dict[str, str] = {
    AuthMethod.MICROSOFT: gettext_noop(
        "In Microsoft 365 the app needs the permission SMTP.SendAsApp (admin consent), a "
        "service principal in Exchange Online with rights on the mailbox, and SMTP AUTH "
        "enabled for the mailbox."
    ),
    AuthMethod.GOOGLE: gettext_noop(
        "In the Google Admin console, domain-wide delegation must allow the service "
        "account's client ID the scope https://mail.google.com/."
    ),
    AuthMethod.OAUTH2: "",
}

# Plain words for the refusals administrators meet most; the provider's code is always shown.
_REFUSAL_HINTS: dict[str, str] = {
    "AADSTS7000215": gettext_noop("The client secret is wrong: copy its value (not its ID) again."),
    "AADSTS7000222": gettext_noop("The client secret has expired: create a new one."),
    "AADSTS700016": gettext_noop(
        "No app with this client ID exists in this directory (tenant): check both IDs."
    ),
    "AADSTS90002": gettext_noop("The directory (tenant) ID is not known to Microsoft."),
    "AADSTS700027": gettext_noop(
        "The certificate does not match one uploaded to the app registration."
    ),
    "invalid_tenant": gettext_noop("The directory (tenant) ID is not known to Microsoft."),
    "unauthorized_client": gettext_noop(
        "Domain-wide delegation is missing for this client ID or the scope."
    ),
    "invalid_grant": gettext_noop(
        "The user to impersonate does not exist, or the key was deleted; check the mailbox "
        "and the key, and that the server's clock is right."
    ),
    "invalid_client": gettext_noop("The client ID or the client secret is wrong."),
    "invalid_scope": gettext_noop("The scope is not known to the provider."),
}


def _describe_oauth_error(exc: OAuthError, configuration: SmtpConfiguration) -> DeferredText:
    provider = exc.provider or "?"
    if isinstance(exc, TokenRefused):
        code = exc.error_code
        # "AADSTS7000215 (invalid_client)": the first word is the most precise code.
        hint = _REFUSAL_HINTS.get(code.split(" ")[0], "")
        return _text(
            gettext_noop(
                "The identity provider %(provider)s refused to issue a token: "
                "%(code)s %(description)s %(hint)s"
            ),
            {
                "provider": provider,
                "code": code,
                "description": exc.description,
                "hint": _text(hint) if hint else "",
            },
        )
    if isinstance(exc, TokenServiceUnavailable):
        return _text(
            gettext_noop(
                "The identity provider %(provider)s is unavailable (%(reason)s). This is on the "
                "provider's side: mails wait and are tried again."
            ),
            {"provider": provider, "reason": exc.reason},
        )
    if isinstance(exc, OAuthSetupError):
        return _text(
            gettext_noop("The OAuth sign-in cannot be prepared: %(reason)s"), {"reason": str(exc)}
        )
    return _text(gettext_noop("No access token: %(reason)s"), {"reason": str(exc)})


# What a failure means for the mail --------------------------------------------------------


def reply_of(exc: BaseException) -> tuple[int | None, str]:
    """The server's reply (code, text) an exception carries: for refused recipients the
    first one's, for sendmail no code and its first line of stderr. Not yet redacted."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code, text = next(iter(exc.recipients.values()))
        return code, _decode(text)
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, _decode(exc.smtp_error)
    if isinstance(exc, SendmailError):
        return None, exc.stderr_line
    return None, ""


def refused_summary(
    refused: Mapping[str, tuple[int, bytes | str]], configuration: SmtpConfiguration
) -> str:
    """The recipients the server refused, as "address: code text; …", redacted."""
    return redact(
        "; ".join(
            f"{address}: {code} {' '.join(_decode(text).split())}"
            for address, (code, text) in refused.items()
        ),
        configuration,
    )


@dataclass(frozen=True)
class Failure:
    """What an exception from opening a session or from send_raw() means; texts redacted."""

    error: str
    reply_code: int | None = None
    # The error as msgid and parameters: stored with the mail, shown in the reader's language.
    error_text: DeferredText | None = None
    reply_text: str = ""
    # Retrying this mail cannot help (a 5xx refusal, a sendmail error other than
    # EX_TEMPFAIL); otherwise it may go through later.
    permanent: bool = False
    # The connection, not this mail, is the problem: a timeout, a network error, a hung
    # or missing sendmail binary.
    connection_failed: bool = False
    # The server hung up (an idle timeout, a restart): worth once more on a new connection.
    disconnected: bool = False


def assess_failure(exc: BaseException, configuration: SmtpConfiguration) -> Failure:
    """What went wrong, for the delivery engine to decide between retry and give-up."""
    code, text = reply_of(exc)
    text = redact(text, configuration)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [reply[0] for reply in exc.recipients.values()]
        error_text = _text(
            gettext_noop("All recipients were refused: %(refused)s"),
            {"refused": refused_summary(exc.recipients, configuration)},
        )
        return Failure(
            error=_shown(error_text),
            error_text=error_text,
            reply_code=code,
            reply_text=text,
            permanent=bool(codes) and all(500 <= c < 600 for c in codes),
        )
    error_text = explain_exception(exc, configuration)
    if isinstance(exc, SendmailError):
        permanent = not exc.temporary
    elif isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
    elif isinstance(exc, TokenRefused | OAuthSetupError):
        # Like a refused password: nothing changes until an administrator acts. (A failed
        # session open defers its mails all the same; see mailbox.delivery.)
        permanent = True
    else:
        # Something we did not foresee: retry later rather than lose the mail for good.
        permanent = False
    return Failure(
        error=_shown(error_text),
        error_text=error_text,
        reply_code=code,
        reply_text=text,
        permanent=permanent,
        # smtplib's exceptions are OSErrors too, but say something about the mail or
        # the session.
        connection_failed=(
            isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException | SendmailError)
        )
        or isinstance(exc, TokenServiceUnavailable),
        disconnected=isinstance(exc, smtplib.SMTPServerDisconnected),
    )


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
