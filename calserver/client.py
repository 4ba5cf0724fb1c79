"""The HTTP side of the connector: sign-in, paging, retries. The only place that talks
to calServer.

No text that leaves this module carries a credential or token: error messages are
written here from the status code, the exception's class and the path (never the URL
with its query, never the server's or requests' own text), and `redact()` removes the
secrets from anything else.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from calmail.common.fields import reveal_secret
from calserver.models import ApiVersion, CalServerConnection, CredentialTransport

logger = logging.getLogger(__name__)

V1_HEADERS = ("HTTP_X_REST_USERNAME", "HTTP_X_REST_PASSWORD", "HTTP_X_REST_API_KEY")
V2_TOKEN_PATH = "/api/v2/auth/token"  # noqa: S105 (a path, not a secret)
# Any page loop ends: a server that keeps answering full pages is not believed forever.
MAX_PAGES = 100_000
_QUERY_SECRET_RE = re.compile(r"(HTTP_X_REST_(?:USERNAME|PASSWORD|API_KEY)=)[^&\s\"']*")


class CalServerError(Exception):
    """calServer could not be read. The message is safe to show and log."""


class CalServerAuthError(CalServerError):
    """401/403: the sync stops, retrying cannot help."""


class CalServerUnavailable(CalServerError):
    """Still 429/5xx/timeouts after every retry."""


def redact_query(text: str) -> str:
    """URLs with v1 credentials in the query, as urllib3 logs them, without the values."""
    return _QUERY_SECRET_RE.sub(r"\1***", text)


class RedactQueryFilter(logging.Filter):
    """On urllib3's logger: its debug lines name the request URL, query and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) else arg
                for arg in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        record.msg = redact_query(str(record.msg))
        return True


@dataclass
class Page:
    records: list[Any]
    total: int | None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


class CalServerClient:
    """One session with calServer for a test or a sync."""

    def __init__(self, connection: CalServerConnection):
        self.connection = connection
        self.session = requests.Session()
        self.base = connection.base_url.rstrip("/")
        self.token = ""
        self.retries = settings.CALMAIL_CALSERVER_RETRIES
        self.backoff = settings.CALMAIL_CALSERVER_BACKOFF_SECONDS
        self.max_wait = settings.CALMAIL_CALSERVER_MAX_RETRY_AFTER_SECONDS

    # --- secrets ------------------------------------------------------------------------

    def secrets(self) -> list[str]:
        c = self.connection
        values = [self.token, self._reveal(c.api_token)]
        if c.api_version == ApiVersion.V1:
            values += [self._reveal(c.password), self._reveal(c.api_key)]
        else:
            values += [self._reveal(c.password)]
        return [value for value in values if value and len(value) >= 3]

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return redact_query(text)

    @staticmethod
    def _reveal(value: Any) -> str:
        try:
            return reveal_secret(value)
        except Exception:
            return ""

    def _credential(self, value: Any, label: str) -> str:
        try:
            return reveal_secret(value)
        except Exception:
            raise CalServerAuthError(
                _(
                    "The stored %(what)s cannot be decrypted with the configured keys: enter it again."
                )
                % {"what": label}
            ) from None

    # --- requests -----------------------------------------------------------------------

    def close(self) -> None:
        self.session.close()

    def _auth(self, params: dict, headers: dict) -> None:
        c = self.connection
        if c.api_version == ApiVersion.V1:
            values = (
                c.username,
                self._credential(c.password, _("password")),
                self._credential(c.api_key, _("API key")),
            )
            target = params if c.credential_transport == CredentialTransport.QUERY else headers
            target.update(dict(zip(V1_HEADERS, values, strict=True)))
        else:
            if not self.token:
                self.authenticate()
            headers["Authorization"] = f"Bearer {self.token}"

    def authenticate(self) -> None:
        """v2: a bearer token, the stored one if there is one, else a new one."""
        c = self.connection
        if c.api_version == ApiVersion.V1:
            return
        stored = self._reveal(c.api_token)
        if stored and not self.token:
            self.token = stored
            return
        self._new_token()

    def _new_token(self) -> None:
        c = self.connection
        body = {
            "email": c.email,
            "password": self._credential(c.password, _("password")),
            "device_name": c.device_name,
        }
        response = self._send("POST", V2_TOKEN_PATH, json=body, auth=False)
        if response.status_code in (401, 403, 422):
            raise CalServerAuthError(
                _(
                    "calServer refused the sign-in (HTTP %(status)s): check the e-mail address and password."
                )
                % {"status": response.status_code}
            )
        self._raise_for_status(response, V2_TOKEN_PATH)
        data = self._json(response, V2_TOKEN_PATH)
        token = data.get("token") if isinstance(data, dict) else None
        if not token or not isinstance(token, str):
            raise CalServerError(_("calServer's sign-in answer holds no token."))
        self.token = token
        # Kept encrypted for the next run; written directly, it is no setting of the user.
        CalServerConnection.objects.filter(pk=c.pk).update(api_token=token)
        c.api_token = token

    def get_json(self, path: str, params: dict | None = None) -> Any:
        response = self._send("GET", path, params=params or {})
        if response.status_code == 401 and self.connection.api_version == ApiVersion.V2:
            # An expired or revoked token: sign in again, once.
            self.token = ""
            self._new_token()
            response = self._send("GET", path, params=params or {})
        if response.status_code == 401:
            raise CalServerAuthError(
                _("calServer refused the credentials (HTTP 401) for %(path)s.") % {"path": path}
            )
        if response.status_code == 403:
            raise CalServerAuthError(
                _(
                    "calServer denied access (HTTP 403) to %(path)s: the API user lacks the permission."
                )
                % {"path": path}
            )
        self._raise_for_status(response, path)
        return self._json(response, path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        auth: bool = True,
    ) -> requests.Response:
        """One request with retries on 429, 5xx, timeouts and broken connections."""
        url = self.base + path
        attempt = 0
        while True:
            query = dict(params or {})
            headers = {"Accept": "application/json"}
            if auth:
                self._auth(query, headers)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=query,
                    json=json,
                    headers=headers,
                    timeout=self.connection.timeout,
                    allow_redirects=False,
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = _("%(error)s for %(path)s") % {
                    "error": exc.__class__.__name__,
                    "path": path,
                }
                wait = None
            except requests.RequestException as exc:
                raise CalServerError(
                    _("%(error)s for %(path)s") % {"error": exc.__class__.__name__, "path": path}
                ) from None
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                problem = _("HTTP %(status)s for %(path)s") % {
                    "status": response.status_code,
                    "path": path,
                }
                wait = _retry_after(response) if response.status_code in (429, 503) else None
            if attempt >= self.retries:
                raise CalServerUnavailable(
                    _("calServer did not answer after %(tries)s tries: %(problem)s")
                    % {"tries": attempt + 1, "problem": problem}
                )
            delay = wait if wait is not None else self.backoff * (2**attempt)
            delay = min(delay, self.max_wait)
            logger.info("calServer: %s; retrying in %.1f s", problem, delay)
            time.sleep(delay)
            attempt += 1

    @staticmethod
    def _raise_for_status(response: requests.Response, path: str) -> None:
        if 300 <= response.status_code < 400:
            raise CalServerError(
                _("calServer redirected %(path)s (HTTP %(status)s): check the base URL.")
                % {"path": path, "status": response.status_code}
            )
        if response.status_code >= 400:
            raise CalServerError(
                _("calServer answered HTTP %(status)s for %(path)s: check the resource path.")
                % {"path": path, "status": response.status_code}
            )

    @staticmethod
    def _json(response: requests.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise CalServerError(
                _("calServer's answer for %(path)s is not JSON.") % {"path": path}
            ) from None

    # --- resources ----------------------------------------------------------------------

    def page(self, kind: str, index: int) -> Page:
        """Page `index` (from 0) of a kind's resource."""
        c = self.connection
        path = c.path_of(kind)
        if c.api_version == ApiVersion.V1:
            params = {c.limit_param: c.page_size, c.offset_param: index * c.page_size}
        else:
            params = {c.page_number_param: index + 1, c.page_size_param: c.page_size}
        return self._page_of(self.get_json(path, params), path)

    @staticmethod
    def _page_of(body: Any, path: str) -> Page:
        """v2: {"data": [...], "meta": {"total"}}; v1: {"data": {"totalCount", <model>: [...]}}."""
        if isinstance(body, dict):
            data = body.get("data")
            if isinstance(data, list):
                meta = body.get("meta")
                total = meta.get("total") if isinstance(meta, dict) else None
                return Page(records=data, total=total if isinstance(total, int) else None)
            if isinstance(data, dict):
                lists = [value for value in data.values() if isinstance(value, list)]
                if len(lists) == 1:
                    total = data.get("totalCount")
                    try:
                        total = int(total) if total is not None else None
                    except (TypeError, ValueError):
                        total = None
                    return Page(records=lists[0], total=total)
        if isinstance(body, list):
            return Page(records=body, total=None)
        raise CalServerError(
            _("calServer's answer for %(path)s holds no list of records.") % {"path": path}
        )

    def pages(self, kind: str) -> Iterator[Page]:
        """Every page of a kind's resource, until a short or empty page or the total."""
        seen = 0
        for index in range(MAX_PAGES):
            page = self.page(kind, index)
            yield page
            seen += len(page.records)
            if len(page.records) < self.connection.page_size or not page.records:
                return
            if page.total is not None and seen >= page.total:
                return
        raise CalServerError(
            _("calServer kept sending pages; stopped after %(count)s.") % {"count": MAX_PAGES}
        )
