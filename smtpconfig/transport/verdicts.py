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

from django.utils.translation import gettext as _

from calmail.common.crypto import SecretDecryptionError
from calmail.common.fields import reveal_secret
from smtpconfig.models import Mailer, SmtpConfiguration
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
            "reply": format_reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, smtplib.SMTPConnectError):
        return _("The server refused the connection: %(reply)s") % {
            "reply": format_reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _("Sender refused: %(reply)s") % {
            "reply": format_reply(exc.smtp_code, exc.smtp_error)
        }
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, message = next(iter(exc.recipients.values()), (0, b""))
        return _("Recipient refused: %(reply)s") % {"reply": format_reply(code, message)}
    if isinstance(exc, smtplib.SMTPDataError):
        return _("Message refused: %(reply)s") % {
            "reply": format_reply(exc.smtp_code, exc.smtp_error)
        }
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
            "reply": format_reply(exc.smtp_code, exc.smtp_error)
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
        return Failure(
            error=_("All recipients were refused: %(refused)s")
            % {"refused": refused_summary(exc.recipients, configuration)},
            reply_code=code,
            reply_text=text,
            permanent=bool(codes) and all(500 <= c < 600 for c in codes),
        )
    error = describe_exception(exc, configuration)
    if isinstance(exc, SendmailError):
        permanent = not exc.temporary
    elif isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
    else:
        # Something we did not foresee: retry later rather than lose the mail for good.
        permanent = False
    return Failure(
        error=error,
        reply_code=code,
        reply_text=text,
        permanent=permanent,
        # smtplib's exceptions are OSErrors too, but say something about the mail or
        # the session.
        connection_failed=isinstance(exc, OSError)
        and not isinstance(exc, smtplib.SMTPException | SendmailError),
        disconnected=isinstance(exc, smtplib.SMTPServerDisconnected),
    )


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else str(text)
