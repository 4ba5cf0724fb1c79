"""What the benchmarks share: a throwaway database, the environment, child processes.

Nothing here imports Django at module level: the environment must be complete before
Django reads its settings.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"


def say(text: str = "") -> None:
    print(text, flush=True)


def is_postgres(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme in ("postgres", "postgresql", "pgsql")


@contextlib.contextmanager
def throwaway_postgres(url: str) -> Iterator[str]:
    """Create a database named calmail_bench_<pid> on the server of url; drop it on exit.

    Connects to the database url names (it must exist, e.g. postgres) to create and drop.
    """
    import psycopg

    parts = urlsplit(url)
    name = f"calmail_bench_{os.getpid()}"
    connect = {
        "host": parts.hostname or LOCALHOST,
        "port": parts.port or 5432,
        "user": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "dbname": unquote(parts.path.lstrip("/")) or "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**connect) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with psycopg.connect(**connect) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def set_environment(
    *, database_url: str, broker_url: str, var_dir: Path, settings_module: str
) -> dict[str, str]:
    """Put the settings' inputs into os.environ (fresh keys) and return them for children."""
    from cryptography.fernet import Fernet

    values = {
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEBUG": "false",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "CALMAIL_VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(values)
    return values


def setup_django() -> None:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


@contextlib.contextmanager
def admin_client_on_throwaway_postgres(directory: Path):
    """A Django test client signed in as an administrator, on a freshly migrated copy of
    DATABASE_URL's server that is dropped afterwards: what the list benchmarks measure."""
    import warnings

    # WhiteNoise warns that STATIC_ROOT does not exist: no collectstatic for a benchmark.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    with throwaway_postgres(os.environ.get("DATABASE_URL", "")) as database_url:
        set_environment(
            database_url=database_url,
            broker_url="memory://",
            var_dir=directory / "var",
            settings_module="calmail.settings_test",
        )
        setup_django()
        # Imported here: Django must not read its settings before set_environment().
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core.management import call_command
        from django.test import Client
        from django.test.utils import setup_test_environment

        from calmail.common.roles import ADMINISTRATOR

        setup_test_environment()
        call_command("migrate", verbosity=0)
        client = Client()
        admin = get_user_model().objects.create_user(username="bench-admin")
        admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
        client.force_login(admin)
        yield client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(interval)


def start_group(command: list[str], *, log_path: Path, **options) -> subprocess.Popen:
    """Start command in a process group of its own (so stop_group reaches its children)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own command lines
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options
        )


def stop_group(process: subprocess.Popen | None, *, grace: float = 10) -> None:
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def smtp_greets(port: int) -> bool:
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1) as connection:
            return connection.recv(3) == b"220"
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# CPU accounting (Linux /proc) ---------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds so far) of every process.

    The CPU seconds include those of its children that ended and were waited for (cutime,
    cstime): a PostgreSQL backend that exits between two readings stays counted, in its
    postmaster, instead of taking its CPU time out of the group's sum."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        # The command name is in parentheses and may contain spaces.
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # utime, stime, cutime, cstime: fields 14 to 17 of proc(5).
        cpu = sum(int(value) for value in fields[11:15]) / ticks
        table[int(entry.name)] = (int(fields[1]), name, cpu)
    return table


def cpu_by_group(groups: dict[str, object]) -> dict[str, float] | None:
    """CPU seconds used so far per named group of processes; None where /proc is missing.

    A group is a root pid (it and all its descendants) or a command name (every process
    of that name, e.g. "postgres" for the server and all its backends)."""
    if not Path("/proc/self/stat").exists():
        return None
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _name, _cpu) in table.items():
        children.setdefault(parent, []).append(pid)
    totals = {}
    for label, root in groups.items():
        if isinstance(root, str):
            totals[label] = sum(cpu for _parent, name, cpu in table.values() if name == root)
            continue
        total, pending = 0.0, [root]
        while pending:
            pid = pending.pop()
            if pid in table:
                total += table[pid][2]
            pending.extend(children.get(pid, ()))
        totals[label] = total
    return totals


def cpu_used(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    if before is None or after is None:
        return {}
    return {label: after[label] - before[label] for label in after}
