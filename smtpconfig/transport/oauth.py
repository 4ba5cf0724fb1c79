"""OAuth 2.0 access tokens for SMTP sign-in (SASL XOAUTH2).

Three providers, each through its own well-kept library: Microsoft 365 with MSAL
(client credentials: a client secret or a certificate), Google Workspace with google-auth
(a service account with domain-wide delegation, impersonating the mailbox), any other
provider with requests-oauthlib (client credentials). No token HTTP is written here.

The token is kept per configuration in an ``OAuthToken`` row, encrypted like the
password, and reused by every session of every worker until shortly before it expires.
A new one is requested under the row's lock (``SELECT … FOR UPDATE``): when ten workers
need a token at once, one asks the identity provider and nine wait for its answer and
read it. SQLite, without row locks, gets a lock per process instead.

Failures say whose side they are on: ``TokenRefused`` (the provider refused the
credentials or the request; its error code is kept), ``TokenServiceUnavailable`` (timeout,
network, 5xx, 429: try again later) and ``OAuthSetupError`` (a stored key that cannot be
read). Their texts never carry a secret or a token.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from calmail.common.fields import reveal_secret
from smtpconfig.models import AuthMethod, OAuthToken, SmtpConfiguration

MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
# A token is renewed this long before it expires (less for tokens that live shorter than
# twice this), so that no session starts with a token that runs out during its AUTH.
REFRESH_MARGIN = timedelta(minutes=5)
# Assumed lifetime when a provider does not say (RFC 6749 makes expires_in optional).
DEFAULT_LIFETIME = timedelta(minutes=30)


class OAuthError(Exception):
    """A token could not be obtained; ``provider`` names the identity provider's host."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider


class TokenRefused(OAuthError):
    """The identity provider answered and refused: wrong credentials, tenant or scope."""

    def __init__(self, *, provider: str, error_code: str, description: str = "") -> None:
        self.error_code = error_code
        self.description = description
        super().__init__(f"{error_code}: {description}".strip(": "), provider=provider)


class TokenServiceUnavailable(OAuthError):
    """The identity provider could not be reached or failed on its side (timeout, 5xx)."""

    def __init__(self, reason: str, *, provider: str) -> None:
        self.reason = reason
        super().__init__(reason, provider=provider)


class OAuthSetupError(OAuthError):
    """A stored credential cannot be used as it is (e.g. a malformed key file)."""


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: datetime
    # Granted scopes (or roles) as the provider reported them, else the requested ones.
    scopes: str
    # Host of the token endpoint: what the connection test shows.
    endpoint_host: str
    # Seconds the request took; None when the token came from the cache.
    duration: float | None = None


def sasl_xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial response before base64 (smtplib encodes it)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


# The cache ------------------------------------------------------------------------------


def get_access_token(configuration: SmtpConfiguration, *, force: bool = False) -> AccessToken:
    """A valid access token for ``configuration``: the cached one unless it expires soon
    (or ``force``, the connection test), else a new one, requested once for all workers."""
    fingerprint = _fingerprint(configuration)
    if not force and (cached := _cached(configuration, fingerprint)) is not None:
        return cached
    requested_at = timezone.now()
    with _refresh_lock(configuration) as row:
        # Another worker may have renewed it while we waited for the lock.
        if row is not None and not force:
            fresh = _usable(row, fingerprint)
            if fresh is not None:
                return fresh
        token = fetch_token(configuration)
        OAuthToken.objects.update_or_create(
            configuration=configuration,
            defaults={
                "access_token": token.token,
                "expires_at": token.expires_at,
                "scopes": token.scopes[:1000],
                "fingerprint": fingerprint,
                "obtained_at": requested_at,
            },
        )
        return token


def forget_token(configuration: SmtpConfiguration, token: str) -> None:
    """Drop the cached token after the mail server refused it (revoked, rights changed),
    so the next session asks for a new one instead of being refused until it expires."""
    row = OAuthToken.objects.filter(configuration=configuration).first()
    if row is not None and _plaintext(row.access_token) == token:
        OAuthToken.objects.filter(pk=row.pk).update(access_token="", expires_at=None)


def _cached(configuration: SmtpConfiguration, fingerprint: str) -> AccessToken | None:
    row = OAuthToken.objects.filter(configuration=configuration).first()
    return None if row is None else _usable(row, fingerprint)


def _usable(row: OAuthToken, fingerprint: str) -> AccessToken | None:
    token = _plaintext(row.access_token)
    if not token or row.expires_at is None or row.fingerprint != fingerprint:
        return None
    lifetime = row.expires_at - (row.obtained_at or row.expires_at)
    margin = min(REFRESH_MARGIN, lifetime / 2)
    if row.expires_at - timezone.now() <= margin:
        return None
    return AccessToken(
        token=token,
        expires_at=row.expires_at,
        scopes=row.scopes,
        endpoint_host=_endpoint_host(row.configuration),
    )


def _plaintext(value: object) -> str:
    try:
        return reveal_secret(value)
    except Exception:
        # Written with a key no longer configured: as good as no token.
        return ""


def _fingerprint(configuration: SmtpConfiguration) -> str:
    """Changes whenever anything the token was obtained with changes (secrets included,
    keyed with SECRET_KEY so the stored value reveals nothing about them)."""
    parts = [
        configuration.auth_method,
        configuration.username,
        configuration.oauth_tenant_id,
        configuration.oauth_client_id,
        configuration.oauth_token_url,
        configuration.oauth_scope,
        settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY,
        _plaintext(configuration.oauth_client_secret),
        _plaintext(configuration.oauth_certificate),
        _plaintext(configuration.oauth_service_account),
    ]
    return salted_hmac("calmail.oauth-token", "\x00".join(parts), algorithm="sha256").hexdigest()


_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextmanager
def _refresh_lock(configuration: SmtpConfiguration) -> Iterator[OAuthToken | None]:
    """Hold the right to renew the configuration's token; yields its row, if any.

    PostgreSQL: the row lock, held in a transaction for the length of the request (at most
    the configuration's timeout), so waiters in other processes block and then read the
    new token. Without row locks (SQLite, a development database): a lock per process.
    """
    if connection.features.has_select_for_update:
        OAuthToken.objects.get_or_create(configuration=configuration)
        with transaction.atomic():
            yield (
                OAuthToken.objects.select_for_update()
                .select_related("configuration")
                .get(configuration=configuration)
            )
        return
    with _process_locks_guard:
        lock = _process_locks.setdefault(configuration.pk, threading.Lock())
    with lock:
        yield (
            OAuthToken.objects.select_related("configuration")
            .filter(configuration=configuration)
            .first()
        )


# The providers ----------------------------------------------------------------------------


def fetch_token(configuration: SmtpConfiguration) -> AccessToken:
    """Ask the configuration's identity provider for a new access token (no cache)."""
    fetchers: dict[str, Callable[[SmtpConfiguration], tuple[str, datetime, str]]] = {
        AuthMethod.MICROSOFT: _fetch_microsoft,
        AuthMethod.GOOGLE: _fetch_google,
        AuthMethod.OAUTH2: _fetch_generic,
    }
    fetcher = fetchers.get(configuration.auth_method)
    if fetcher is None:
        raise OAuthSetupError(f"{configuration.auth_method} is no OAuth sign-in method")
    started = time.monotonic()
    token, expires_at, scopes = fetcher(configuration)
    return AccessToken(
        token=token,
        expires_at=expires_at,
        scopes=scopes,
        endpoint_host=_endpoint_host(configuration),
        duration=time.monotonic() - started,
    )


def microsoft_authority(configuration: SmtpConfiguration) -> str:
    base = settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY.rstrip("/")
    return f"{base}/{configuration.oauth_tenant_id.strip()}"


def _endpoint_host(configuration: SmtpConfiguration) -> str:
    method = configuration.auth_method
    if method == AuthMethod.MICROSOFT:
        url = settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY
    elif method == AuthMethod.GOOGLE:
        url = _service_account_info(configuration, strict=False).get("token_uri", "")
    else:
        url = configuration.oauth_token_url
    return urlparse(str(url)).netloc or "?"


def _verify() -> str | bool:
    """What requests verifies token endpoints' certificates against."""
    return settings.CALMAIL_OAUTH_CA_FILE or True


def _http_session(timeout: float, base: type | None = None) -> Any:
    """A requests session (of ``base``, e.g. OAuth2Session) for token endpoints: our CA
    setting and the configuration's timeout on every request.

    requests lets REQUESTS_CA_BUNDLE override a session's own ``verify``; given per
    request, CALMAIL_OAUTH_CA_FILE wins (and without it the environment still counts)."""
    import requests

    class TokenSession(base or requests.Session):  # type: ignore[misc]
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("verify") is None:
                kwargs["verify"] = _verify()
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().request(method, url, *args, **kwargs)

    return TokenSession


def _expiry(seconds: object) -> datetime:
    try:
        lifetime = timedelta(seconds=int(str(seconds)))
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return timezone.now() + lifetime


def _network_reason(exc: BaseException) -> str:
    import requests

    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS: {_short(exc)}"
    return _short(exc)


def _short(exc: BaseException) -> str:
    # requests nests the real cause; its last line says what happened without the URL.
    text = str(exc) or type(exc).__name__
    return text.splitlines()[-1][:300]


def _status_in(text: str) -> int:
    found = re.search(r"\b([1-5]\d\d)\b", text)
    return int(found.group(1)) if found else 0


_AADSTS = re.compile(r"\bAADSTS\d+\b")
# Microsoft's error codes that mean "try again later" rather than "fix the credentials".
_MICROSOFT_TEMPORARY = {"temporarily_unavailable", "server_error", "service_unavailable"}


def _fetch_microsoft(configuration: SmtpConfiguration) -> tuple[str, datetime, str]:
    import msal
    import msal.exceptions
    import requests

    host = urlparse(settings.CALMAIL_OAUTH_MICROSOFT_AUTHORITY).netloc
    credential: str | dict[str, str]
    secret = reveal_secret(configuration.oauth_client_secret)
    credential = secret or _certificate_credential(reveal_secret(configuration.oauth_certificate))
    session = _http_session(configuration.timeout)()
    try:
        app = msal.ConfidentialClientApplication(
            configuration.oauth_client_id.strip(),
            client_credential=credential,
            authority=microsoft_authority(configuration),
            # The tenant's endpoints come from its OpenID configuration; asking Microsoft
            # whether the host is one of its clouds first is one more request for nothing.
            instance_discovery=False,
            http_client=session,
        )
        result = app.acquire_token_for_client(scopes=[MICROSOFT_SCOPE])
    except (requests.HTTPError, msal.exceptions.MsalServiceError) as exc:
        # MSAL's own HTTP client reports a failed discovery as "HTTP Error: 503".
        response = getattr(exc, "response", None)
        status = response.status_code if response is not None else _status_in(str(exc))
        if status >= 500 or status == 429 or status == 0:
            raise TokenServiceUnavailable(f"HTTP {status}", provider=host) from None
        raise TokenRefused(provider=host, error_code=f"HTTP {status}") from None
    except requests.RequestException as exc:
        raise TokenServiceUnavailable(_network_reason(exc), provider=host) from None
    except ValueError as exc:
        # MSAL's words for a tenant that does not exist (its discovery answers 400/404).
        if "OIDC Discovery failed" in str(exc) or "authority configuration" in str(exc):
            raise TokenRefused(
                provider=host,
                error_code="invalid_tenant",
                description=_("The directory (tenant) ID is not known to Microsoft."),
            ) from None
        raise OAuthSetupError(_short(exc), provider=host) from None
    finally:
        session.close()
    if "access_token" not in result:
        error = str(result.get("error") or "unknown_error")
        description = " ".join(str(result.get("error_description") or "").split())
        # The first line of Microsoft's description is the useful part; trace and
        # correlation IDs follow.
        description = description.split(" Trace ID:")[0][:500]
        if error in _MICROSOFT_TEMPORARY:
            raise TokenServiceUnavailable(f"{error}: {description}", provider=host)
        code = _AADSTS.search(description)
        raise TokenRefused(
            provider=host,
            error_code=f"{code.group(0)} ({error})" if code else error,
            description=_AADSTS.sub("", description, count=1).strip(" :") if code else description,
        )
    token = str(result["access_token"])
    return token, _expiry(result.get("expires_in")), _microsoft_grants(token, result)


def _microsoft_grants(token: str, result: dict[str, Any]) -> str:
    """The application permissions (roles) in the token, e.g. SMTP.SendAsApp; Microsoft
    answers client credentials without a "scope"."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    roles = claims.get("roles") or claims.get("scp")
    if isinstance(roles, list):
        return " ".join(str(role) for role in roles)
    if isinstance(roles, str):
        return roles
    return str(result.get("scope") or MICROSOFT_SCOPE)


def _certificate_credential(pem: str) -> dict[str, str]:
    """MSAL's certificate credential from one PEM text holding the private key and the
    certificate (as Entra shows it, MSAL derives the thumbprint from the certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    keys = re.findall(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
    )
    certificates = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if not keys or not certificates:
        raise OAuthSetupError(
            _("The certificate must be PEM text with the private key and the certificate.")
        )
    try:
        serialization.load_pem_private_key(keys[0].encode(), password=None)
        x509.load_pem_x509_certificate(certificates[0].encode())
    except (ValueError, TypeError):
        raise OAuthSetupError(
            _(
                "The private key or the certificate cannot be read (an encrypted key is not supported)."
            )
        ) from None
    return {"private_key": keys[0], "public_certificate": certificates[0]}


def validate_certificate(pem: str) -> None:
    """Raises OAuthSetupError when ``pem`` is not usable as a Microsoft certificate credential."""
    _certificate_credential(pem)


def _service_account_info(configuration: SmtpConfiguration, *, strict: bool = True) -> dict:
    try:
        info = json.loads(reveal_secret(configuration.oauth_service_account) or "{}")
    except Exception:
        if strict:
            raise OAuthSetupError(_("The service account key is not valid JSON.")) from None
        return {}
    if not isinstance(info, dict):
        if strict:
            raise OAuthSetupError(_("The service account key is not valid JSON."))
        return {}
    return info


def validate_service_account(text: str) -> None:
    """Raises OAuthSetupError unless ``text`` is a service account key file (JSON)."""
    try:
        info = json.loads(text)
    except ValueError:
        raise OAuthSetupError(_("The service account key is not valid JSON.")) from None
    required = ("type", "client_email", "private_key", "token_uri")
    if (
        not isinstance(info, dict)
        or info.get("type") != "service_account"
        or any(not info.get(key) for key in required)
    ):
        raise OAuthSetupError(
            _(
                "This is not a service account key: download the JSON key of the service "
                "account (type “service_account”) in the Google Cloud console."
            )
        )


def _fetch_google(configuration: SmtpConfiguration) -> tuple[str, datetime, str]:
    from google.auth import exceptions as google_exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    info = _service_account_info(configuration)
    host = urlparse(str(info.get("token_uri", ""))).netloc or "?"
    timeout = configuration.timeout

    class TimedRequest(Request):
        # google-auth asks its token endpoint with a 120 s default; the configuration's rules.
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = timeout
            return super().__call__(*args, **kwargs)

    try:
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[GOOGLE_SCOPE], subject=configuration.username.strip()
        )
    except (ValueError, KeyError, TypeError):
        raise OAuthSetupError(
            _("The service account key cannot be used: download a new JSON key."), provider=host
        ) from None
    session = _http_session(timeout)()
    try:
        credentials.refresh(TimedRequest(session))
    except google_exceptions.RefreshError as exc:
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        if getattr(exc, "retryable", False):
            raise TokenServiceUnavailable(
                str(data.get("error") or _short(exc)), provider=host
            ) from None
        raise TokenRefused(
            provider=host,
            error_code=str(data.get("error") or "refused"),
            description=" ".join(str(data.get("error_description") or "").split())[:500],
        ) from None
    except google_exceptions.TransportError as exc:
        cause = exc.__cause__ or exc
        raise TokenServiceUnavailable(_network_reason(cause), provider=host) from None
    finally:
        session.close()
    expiry = credentials.expiry
    expires_at = (
        expiry.replace(tzinfo=UTC) if expiry is not None else timezone.now() + DEFAULT_LIFETIME
    )
    return str(credentials.token), expires_at, GOOGLE_SCOPE


def _fetch_generic(configuration: SmtpConfiguration) -> tuple[str, datetime, str]:
    import requests
    from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
    from requests_oauthlib import OAuth2Session

    host = urlparse(configuration.oauth_token_url).netloc or "?"
    scopes = configuration.oauth_scope.split()
    client_id = configuration.oauth_client_id.strip()
    session = _http_session(configuration.timeout, OAuth2Session)(
        client=BackendApplicationClient(client_id=client_id, scope=scopes)
    )

    def refuse_server_errors(response: requests.Response) -> requests.Response:
        # oauthlib would read a 503 page as "missing access token": a refusal it is not.
        if response.status_code >= 500 or response.status_code == 429:
            raise TokenServiceUnavailable(f"HTTP {response.status_code}", provider=host)
        return response

    session.register_compliance_hook("access_token_response", refuse_server_errors)
    try:
        token = session.fetch_token(
            token_url=configuration.oauth_token_url,
            client_id=client_id,
            client_secret=reveal_secret(configuration.oauth_client_secret),
            timeout=configuration.timeout,
        )
    except OAuth2Error as exc:
        raise TokenRefused(
            provider=host,
            error_code=str(exc.error or "refused"),
            description=" ".join(str(exc.description or "").split())[:500],
        ) from None
    except Warning as exc:
        # oauthlib raises a Warning when the granted scopes differ from the requested;
        # the token is valid all the same, and the granted scopes are what we show.
        token = getattr(exc, "token", None)
        if not token:
            raise OAuthSetupError(str(exc), provider=host) from None
    except requests.RequestException as exc:
        raise TokenServiceUnavailable(_network_reason(exc), provider=host) from None
    finally:
        session.close()
    granted = token.get("scope") or scopes
    if isinstance(granted, list):
        granted = " ".join(granted)
    return str(token["access_token"]), _expiry(token.get("expires_in")), str(granted)
