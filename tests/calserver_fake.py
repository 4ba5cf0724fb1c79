"""A fake calServer for the connector's tests: a small HTTP server in a thread speaking
the v1 and v2 shapes of ../shared/docs/CALSERVER-API.md.

- v1: `/api/<resource>` with the three credentials as headers or query parameters
  (`HTTP_X_REST_USERNAME`, `..._PASSWORD`, `..._API_KEY`), `limit`/`offset`, answers
  `{"success", "message", "data": {"totalCount", <model>: [...]}}`; a wrong or missing
  credential gives 401 "authentication error". `drop_underscore_headers` acts like an
  Nginx in front that drops header names with underscores.
- v2: `POST /api/v2/auth/token` {"email","password","device_name"} -> {"token"};
  `GET /api/v2/<resource>?page[number]=&page[size]=` with `Authorization: Bearer` answers
  `{"data": [...], "meta": {"total"}}`; `expire_tokens()` makes every token answer 401.
- Faults: `fail_next(path, status, ...)` answers the next matching request with that
  status (a 429 with Retry-After, a 500, a 403), `delay_next(path, seconds)` answers late.

Nothing of calmail is imported or replaced: tests read what calmail stored.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

V1_USER = "api-user"
V1_PASSWORD = "v1-Passw0rt-geheim"
V1_KEY = "v1-key-9f8e7d6c5b4a"
V2_EMAIL = "api@firma.example"
V2_PASSWORD = "v2-Passw0rt-geheim"
TOKEN_PREFIX = "tok-secret-"


@dataclass
class Fault:
    path: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    page: int | None = None  # v2 page number or v1 page index (offset // limit), if given


class FakeCalServer:
    def __init__(self):
        self.lock = threading.Lock()
        # v1: path -> (model key, records); v2: path -> records
        self.v1: dict[str, tuple[str, list[Any]]] = {}
        self.v2: dict[str, list[Any]] = {}
        self.drop_underscore_headers = False
        self.tokens: set[str] = set()
        self.tokens_issued = 0
        self.faults: list[Fault] = []
        # (method, path, query, headers) of every request, for asserting how calmail asked.
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(
        self, path: str, status: int, *, times: int = 1, headers=None, body=None, page=None
    ):
        with self.lock:
            for _ in range(times):
                self.faults.append(
                    Fault(
                        path=path, status=status, headers=dict(headers or {}), body=body, page=page
                    )
                )

    def delay_next(self, path: str, seconds: float, *, times: int = 1):
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(path=path, status=0, delay=seconds))

    def expire_tokens(self):
        with self.lock:
            self.tokens.clear()

    def requests_to(self, path: str) -> list[tuple[str, str, dict[str, str], dict[str, str]]]:
        return [request for request in self.requests if request[1] == path]

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- serving ------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        headers = {key: value for key, value in request.headers.items()}
        if self.drop_underscore_headers:
            headers = {key: value for key, value in headers.items() if "_" not in key}
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, parts.path, query, headers))
            fault = self._take_fault(parts.path, query)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            else:
                return self._send(
                    request, fault.status, fault.body or {"message": "fault"}, fault.headers
                )
        if parts.path == "/api/v2/auth/token" and method == "POST":
            return self._token(request, body)
        if parts.path.startswith("/api/v2/"):
            return self._v2(request, parts.path, query, headers)
        if parts.path.startswith("/api/"):
            return self._v1(request, parts.path, query, headers)
        return self._send(request, 404, {"message": "not found"})

    def _take_fault(self, path: str, query: dict[str, str]) -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.path != path:
                continue
            if fault.page is not None and fault.page != self._page_of(query):
                continue
            return self.faults.pop(index)
        return None

    @staticmethod
    def _page_of(query: dict[str, str]) -> int:
        if "page[number]" in query:
            return int(query["page[number]"])
        limit = int(query.get("limit", 0) or 1)
        return int(query.get("offset", 0)) // limit

    def _send(self, request, status: int, payload: Any, headers: dict | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(raw)

    def _token(self, request, body: bytes) -> None:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if data.get("email") != V2_EMAIL or data.get("password") != V2_PASSWORD:
            return self._send(request, 422, {"message": "The provided credentials are incorrect."})
        with self.lock:
            self.tokens_issued += 1
            token = f"{self.tokens_issued}|{TOKEN_PREFIX}{self.tokens_issued:04d}abcdef"
            self.tokens.add(token)
        return self._send(request, 200, {"token": token})

    def _v2(self, request, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return self._send(request, 401, {"message": "Unauthenticated."})
        if path not in self.v2:
            return self._send(request, 404, {"message": "not found"})
        records = self.v2[path]
        number = int(query.get("page[number]", 1))
        size = int(query.get("page[size]", 10))
        chunk = records[(number - 1) * size : number * size]
        return self._send(request, 200, {"data": chunk, "meta": {"total": len(records)}})

    def _v1(self, request, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        names = ("HTTP_X_REST_USERNAME", "HTTP_X_REST_PASSWORD", "HTTP_X_REST_API_KEY")
        given = [headers.get(name) or query.get(name) for name in names]
        if given != [V1_USER, V1_PASSWORD, V1_KEY]:
            return self._send(request, 401, {"success": False, "message": "authentication error"})
        if path not in self.v1:
            return self._send(request, 404, {"success": False, "message": "not found"})
        model, records = self.v1[path]
        limit = int(query.get("limit", 100))
        offset = int(query.get("offset", 0))
        return self._send(
            request,
            200,
            {
                "success": True,
                "message": "Record(s) Found",
                "data": {"totalCount": len(records), model: records[offset : offset + limit]},
            },
        )


# --- sample data in the documented shapes --------------------------------------------------


def v2_customer(uuid: str, number: str, name: str, city: str = "Jena") -> dict:
    return {
        "id": uuid,
        "type": "customer",
        "attributes": {"customer_number": number, "name": name, "city": city},
    }


def v2_inventory(uuid: str, asset: str, customer: str, **attributes) -> dict:
    return {
        "id": uuid,
        "type": "inventory",
        "attributes": {
            "asset_number": asset,
            "serial_number": f"SN-{asset}",
            "description": "Digitalmultimeter",
            "manufacturer": "Fluke",
            "model": "87V",
            "location": "Lab A",
            "status": 1,
            "calibration_interval": 12,
            **attributes,
        },
        "relationships": {"customer": {"data": {"id": customer, "type": "customer"}}},
    }


def v1_inventory(mtag: str, number: str, ktag: str, **codes) -> dict:
    return {
        "MTAG": mtag,
        "KTAG": ktag,
        "I4201": number,
        "I4202": "Mitutoyo",
        "I4203": "CD-15",
        "I4204": "Messschieber",
        "I4206": f"SN{number}",
        **codes,
    }
