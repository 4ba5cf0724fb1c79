"""The only place in calmail that talks to the mail system (SMTP or a local sendmail binary).

- ``session``: ``open_session()`` gives a mailer session with one ``send_raw()`` for
  both mailers, ``close()`` and ``hang_up()``; the delivery engine sends through it and
  nothing else. Its SMTP side (``smtp``) is smtplib with calmail's TLS policy, a masked
  transcript and a deadline, and pipelines the commands where the server offers it
  (``pipelining``, RFC 2920); its sendmail side is ``sendmail``.
- ``verdicts``: ``redact()``, ``describe_exception()`` and ``assess_failure()``.
- ``probe``: ``test_connection()`` and ``send_test_mail()`` for the configuration pages.
- ``oauth``: access tokens for AUTH XOAUTH2 (Microsoft 365, Google Workspace, any
  client-credentials provider), cached per configuration and renewed once for all workers.

Secrets: the password (and an OAuth client secret, key or token) is revealed only when a connection is opened, never formatted
into a message, and replaced by ``********`` in every transcript line sent during AUTH.
What the server (or sendmail) says can quote it all the same ("535 … failed for mailer
<password>"), so every such text passes ``redact()`` before it leaves this package:
reports (verdict, transcript, reply), ``describe_exception()``, ``assess_failure()`` and
the replies ``send_raw()`` returns. smtplib's debug output is never enabled because it
prints AUTH payloads.
"""

from smtpconfig.transport.oauth import (
    AccessToken,
    OAuthError,
    OAuthSetupError,
    TokenRefused,
    TokenServiceUnavailable,
    get_access_token,
)
from smtpconfig.transport.probe import (
    ConnectionReport,
    build_test_mail,
    send_test_mail,
    test_connection,
)
from smtpconfig.transport.sendmail import SendmailError, SendmailTimeout
from smtpconfig.transport.session import MailerSession, Sent, bare_address, open_session
from smtpconfig.transport.smtp import (
    AuthNotOffered,
    CaFileError,
    NoCommonAuthMechanism,
    StartTlsNotOffered,
    build_ssl_context,
)
from smtpconfig.transport.transcript import MASK, Direction, TranscriptLine
from smtpconfig.transport.verdicts import Failure, assess_failure, describe_exception, redact

__all__ = [
    "MASK",
    "AccessToken",
    "AuthNotOffered",
    "CaFileError",
    "ConnectionReport",
    "Direction",
    "Failure",
    "MailerSession",
    "NoCommonAuthMechanism",
    "OAuthError",
    "OAuthSetupError",
    "SendmailError",
    "SendmailTimeout",
    "Sent",
    "StartTlsNotOffered",
    "TokenRefused",
    "TokenServiceUnavailable",
    "TranscriptLine",
    "assess_failure",
    "bare_address",
    "build_ssl_context",
    "build_test_mail",
    "describe_exception",
    "get_access_token",
    "open_session",
    "redact",
    "send_test_mail",
    "test_connection",
]
