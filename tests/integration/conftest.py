"""Harness for the delivery engine's integration tests: real Celery workers, Redis, PostgreSQL.

What runs where:

- pytest-django's test database (PostgreSQL) is shared with the workers: the tests use
  transactional database access, so every row they write is committed and visible to the
  worker processes, and the workers' writes are visible to the tests.
- Redis is a redis-server of our own on a free port, not the CI one, so a test can stop and
  restart it, and no stale task of another test reaches our workers. The test process's
  Celery app publishes to it for as long as the test runs.
- Workers are ``celery -A calmail worker`` subprocesses, each in its own process group so
  that SIGKILL reaches the pool child too (a killed machine, not a graceful shutdown).
  They get this process's SECRET_KEY and FERNET_KEYS (settings_test invents fresh ones per
  process), so they can decrypt what the tests stored.
- The SMTP server is tests/smtp_server.py's, in this process; workers connect to its port.

Every wait is bounded and says what it waited for; workers, Redis and SMTP servers are
stopped at teardown whatever the outcome.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import kombu.pools
import pytest
from django.conf import settings

from tests import clock
from tests.smtp_server import LOCALHOST, SmtpTestServer, _Handler

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    # A conftest hook sees the whole session's items: mark only the ones below here.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.services)


# Waiting ---------------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    what: str,
    details: Callable[[], str] | None = None,
    interval: float = 0.05,
):
    """Poll condition until it returns something truthy (and return that), or fail saying
    what was awaited, with details() (e.g. counts and worker logs) for the failure report."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{details()}" if details else ""
            pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.{extra}")
        time.sleep(interval)


# Processes -------------------------------------------------------------------------------

# Process groups we started, killed at interpreter exit should a teardown never run.
_live_groups: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for group in list(_live_groups):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


def _group_pids(group: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces): state ppid pgrp ...
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == group and state != "Z":
            pids.append(int(entry))
    return pids


def _socket_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets whose local port is port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                columns = line.split()
                if int(columns[1].rpartition(":")[2], 16) == port:
                    inodes.add(columns[9])
    return inodes


def pids_with_local_port(port: int, pids: Iterable[int]) -> list[int]:
    """Which of pids hold a socket bound to local port (the client side of a connection)."""
    targets = {f"socket:[{inode}]" for inode in _socket_inodes(port)}
    owners = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        owners.append(pid)
                        break
    return owners


def _stop_group(process: subprocess.Popen, *, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after grace seconds."""
    group = process.pid
    if process.poll() is None and grace > 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)
    # Pool children are reparented when their parent dies; wait until they are gone too.
    deadline = time.monotonic() + 10
    while _group_pids(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    _live_groups.discard(group)


# Redis -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway redis-server on 127.0.0.1; stop() and start() again keep the port."""

    def __init__(self, directory: Path):
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "Redis is already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                LOCALHOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _live_groups.add(self.process.pid)
        wait_for(
            self.ping,
            timeout=10,
            what=f"redis-server on port {self.port} to answer PING",
            details=lambda: (self.directory / "redis.log").read_text(errors="replace")[-2000:],
        )

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, grace=5)
            self.process = None

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def queue_length(self, queue: str = "celery") -> int:
        import redis

        return int(redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=2).llen(queue))


def _reset_celery_pools(app) -> None:
    # What Celery itself does after a fork: drop the pooled broker connections so the
    # next publish connects to the broker configured now.
    if app._pool is not None:
        with contextlib.suppress(Exception):
            app._pool.force_close_all()
    amqp = app.__dict__.get("amqp")
    if amqp is not None and amqp._producer_pool is not None:
        with contextlib.suppress(Exception):
            amqp._producer_pool.force_close_all()
        amqp._producer_pool = None
    app._pool = None
    # kombu keeps its pools in a registry keyed by connection: without a reset the next
    # publish to the same broker gets the pool closed above ("Acquire on closed pool").
    kombu.pools.reset()


@contextlib.contextmanager
def celery_publishing_to(url: str) -> Iterator[None]:
    """Make this process's Celery app (enqueue, sweep) publish to url while inside."""
    from calmail.celery import app

    conf = app.conf
    saved = {
        "broker_url": conf.broker_url,
        "broker_transport_options": conf.broker_transport_options,
    }
    # Celery prefers the CELERY_BROKER_URL environment variable (CI sets it) to its config.
    saved_environment = os.environ.get("CELERY_BROKER_URL")
    _reset_celery_pools(app)
    os.environ["CELERY_BROKER_URL"] = url
    conf.broker_url = url
    conf.broker_transport_options = {"visibility_timeout": 3600}
    try:
        with app.connection_for_write() as connection:
            assert connection.as_uri(include_password=True) == url, "Celery ignored the broker"
        yield
    finally:
        _reset_celery_pools(app)
        if saved_environment is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_environment
        for name, value in saved.items():
            setattr(conf, name, value)


# Celery workers --------------------------------------------------------------------------


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database pytest-django created (its NAME is the test one)."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    if engine != "django.db.backends.postgresql":
        raise NotImplementedError(f"No DATABASE_URL for {engine}")
    credentials = quote(settings_dict.get("USER") or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict.get("HOST") or LOCALHOST
    port = settings_dict.get("PORT") or 5432
    at = "@" if credentials else ""
    return f"postgres://{credentials}{at}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def group(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The main process and its pool children."""
        return _group_pids(self.group)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the main process and its pool children at once, like a crash."""
        _stop_group(self.process, grace=0)

    def stop(self) -> None:
        _stop_group(self.process, grace=5)


@dataclass
class CeleryWorkers:
    """Starts `celery -A calmail worker` processes; stop_all() ends every one of them."""

    database_url: str
    broker_url: str
    directory: Path
    environment: dict[str, str] = field(default_factory=dict)
    started: list[Worker] = field(default_factory=list)

    def start(self, name: str, *, concurrency: int = 1, **environment: str) -> Worker:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "calmail.settings_test",
            "DATABASE_URL": self.database_url,
            "CELERY_BROKER_URL": self.broker_url,
            # settings_test made these up for this process: the workers need the same ones.
            "SECRET_KEY": os.environ["SECRET_KEY"],
            "FERNET_KEYS": os.environ["FERNET_KEYS"],
            "CALMAIL_VAR_DIR": str(self.directory / "var"),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.environment,
            **environment,
        }
        log_path = self.directory / f"worker-{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
        process = subprocess.Popen(
            [
                # At the test process's clock (CALMAIL_TEST_CLOCK): workers compare due times
                # and leases the tests wrote with their own now.
                *clock.python_command(),
                "-m",
                "celery",
                "-A",
                "calmail",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _live_groups.add(process.pid)
        worker = Worker(name=name, process=process, log_path=log_path)
        self.started.append(worker)

        def ready() -> bool:
            if not worker.is_running():
                pytest.fail(
                    f"Celery worker {name} exited with status {process.returncode} "
                    f"before it was ready:\n{worker.log_tail()}"
                )
            return " ready." in worker.log()

        wait_for(
            ready,
            timeout=60,
            what=f"Celery worker {name} to be ready",
            details=worker.log_tail,
            interval=0.1,
        )
        return worker

    def logs(self) -> str:
        return "\n\n".join(
            f"--- worker {worker.name} (last lines) ---\n{worker.log_tail()}"
            for worker in self.started
        )

    def stop_all(self) -> None:
        # Warm shutdown of all at once, then wait for each (at most 5 s before SIGKILL).
        for worker in self.started:
            if worker.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.group, signal.SIGTERM)
        for worker in self.started:
            worker.stop()


# SMTP ------------------------------------------------------------------------------------


class _HoldingHandler(_Handler):
    """Records like the usual handler, and can keep one DATA reply back (see hold_after)."""

    async def handle_DATA(self, smtp, session, envelope) -> str:
        reply = await super().handle_DATA(smtp, session, envelope)
        server: IntegrationSmtpServer = self.server
        if (
            reply.startswith("250")
            and server.hold_after is not None
            and server.held_peer is None
            and len(server.messages) >= server.hold_after
        ):
            # The message is stored (counted as received) but the client does not hear
            # 250 until the test releases it: a kill now lands between the two.
            server.held_peer = smtp.transport.get_extra_info("peername")
            server.held_message_id = str(server.messages[-1].message["Message-ID"])
            server.holding.set()
            while not server.released.is_set():
                await asyncio.sleep(0.01)
        return reply


class IntegrationSmtpServer(SmtpTestServer):
    """The test SMTP server on a chosen port (0: any), which can hold one DATA reply back.

    hold_after = n: after the n-th message is received, its 250 is held until release();
    ``holding`` is set then, ``held_peer`` is the client's (host, port) and
    ``held_message_id`` that message's Message-ID.
    """

    def __init__(self, *, port: int = 0, **options):
        super().__init__(**options)
        self._controller.handler = _HoldingHandler(self)
        self._controller.port = port
        self.hold_after: int | None = None
        self.held_peer: tuple[str, int] | None = None
        self.held_message_id: str | None = None
        self.holding = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        super().stop()

    def message_ids(self) -> Counter:
        """How often each Message-ID was received."""
        return Counter(str(received.message["Message-ID"]) for received in list(self.messages))


# Fixtures --------------------------------------------------------------------------------


@pytest.fixture
def integration_services() -> None:
    """Skip (locally) without what the integration tests need; in CI a skip is a failure."""
    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        pytest.skip(
            "integration tests share the database with worker processes and need "
            "PostgreSQL: set DATABASE_URL=postgres://..."
        )
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.skip("integration tests start their own Redis: apt-get install redis-server")


@pytest.fixture
def redis_server(integration_services, tmp_path) -> Iterator[RedisServer]:
    """A Redis of this test's own; this process's Celery app publishes to it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        with celery_publishing_to(server.url):
            yield server
    finally:
        server.stop()


@pytest.fixture
def celery_workers(transactional_db, redis_server, tmp_path) -> Iterator[CeleryWorkers]:
    """Start workers with celery_workers.start(name, **environment); all stop at teardown.

    Depends on transactional_db so that it is torn down first: the workers are gone before
    pytest-django empties the tables they use.
    """
    from django.db import connection

    workers = CeleryWorkers(
        database_url=database_url(connection.settings_dict),
        broker_url=redis_server.url,
        directory=tmp_path,
    )
    try:
        yield workers
    finally:
        workers.stop_all()


@pytest.fixture
def integration_smtp_server(smtp_certificates) -> Iterator[Callable[..., IntegrationSmtpServer]]:
    """Start IntegrationSmtpServer(port=..., **options) servers; all stop at teardown."""
    servers: list[IntegrationSmtpServer] = []

    def start(*, port: int = 0, **options) -> IntegrationSmtpServer:
        options.setdefault("certificates", smtp_certificates)
        # Like Postfix and most servers: the workers take the pipelined path.
        options.setdefault("pipelining", True)
        server = IntegrationSmtpServer(port=port, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        with contextlib.suppress(Exception):
            server.stop()
