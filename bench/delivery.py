"""Delivery benchmark: mails per second through the real engine, against a plain-smtplib ceiling.

    python bench/delivery.py [--count 20000] [--workers 2] [--latency 100] [--latency-count 5000]

1. A throwaway database: a new PostgreSQL database when DATABASE_URL points to PostgreSQL
   (dropped at the end), else a temporary SQLite file; migrations applied.
2. A real SMTP server on loopback in a separate process: Postfix's smtp-sink when it is
   installed (Debian package postfix; only the binary is used, no Postfix daemon), else a
   minimal aiosmtpd server that accepts and discards.
3. The broker: CELERY_BROKER_URL or REDIS_URL when one is a redis:// URL, else a temporary
   redis-server.
4. A Celery worker with --concurrency 2 (two worker processes, one per core of the
   reference machine) is started and idle; then N mails are enqueued through
   mailbox.services.enqueue_many, which commits (and nudges delivery) chunk by chunk, so
   delivery overlaps the enqueue. Where enqueue_many does not exist (an older checkout),
   each mail goes through enqueue(), one transaction per chunk. The clock starts at the
   first enqueue call and stops when every row is "sent"; enqueue and delivery after the
   last enqueue returned are printed separately.
5. The ceiling: the same number of mails, pre-rendered, sent with plain smtplib over one
   reused connection from each of 2 processes to the same server; measured
   --ceiling-runs times (3), the median counts.
6. The latency phase (skipped with --latency 0): an aiosmtpd server that answers each
   mail's content after --latency ms (asyncio.sleep, so it serves many sessions at once),
   a fresh SMTP configuration with --max-connections (10), a fresh worker, and
   --latency-count mails (5000) through the same enqueue and clock. The server counts the
   sessions open at once; sessions / latency is the physical limit, since a session
   carries one mail at a time.

Timings are printed, never asserted. The last line is
``delivery: R mails/s end to end (enqueue E mails/s), ceiling C mails/s, ratio X; latency L ms:
Q mails/s over S sessions, limit P mails/s`` (one line; ``latency off`` with --latency 0).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import smtplib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    LOCALHOST,
    REPO_ROOT,
    cpu_by_group,
    cpu_used,
    free_port,
    is_postgres,
    redis_answers,
    say,
    set_environment,
    setup_django,
    smtp_greets,
    start_group,
    stop_group,
    tail,
    throwaway_postgres,
    wait_until,
)

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SENDER = "bench@example.com"
# Mails per enqueue_many chunk (each committed on its own); the fallback commits as often.
ENQUEUE_CHUNK = 500
# The latency phase's SMTP configuration, unless --max-connections says otherwise.
LATENCY_MAX_CONNECTIONS = 10

SUBJECT = "Calibration due: instrument {number}"
BODY_TEXT = (
    "Hello,\n\nthe following instrument is due for calibration:\n\n"
    "  Inventory number: {number}\n  Description: Digital multimeter, 6.5 digits\n"
    "  Location: Laboratory 2, cabinet 4\n  Due date: 2025-12-01\n\n"
    "Please book the calibration in calServer.\n\nKind regards\nyour calibration team\n"
)
BODY_HTML = (
    "<p>Hello,</p><p>the following instrument is due for calibration:</p>"
    "<table><tr><th>Inventory number</th><td>{number}</td></tr>"
    "<tr><th>Description</th><td>Digital multimeter, 6.5 digits</td></tr>"
    "<tr><th>Location</th><td>Laboratory 2, cabinet 4</td></tr>"
    "<tr><th>Due date</th><td>2025-12-01</td></tr></table>"
    "<p>Please book the calibration in calServer.</p><p>Kind regards<br>your calibration team</p>"
)


def recipient(number: int) -> str:
    return f"user{number}@example.com"


# The SMTP servers --------------------------------------------------------------------------


def serve_aiosmtpd(
    port: int, *, latency_ms: float = 0, pipelining: bool = True, stats_path: str = ""
) -> None:
    """An aiosmtpd server in its own process (`delivery.py --serve-aiosmtpd PORT ...`) that
    accepts every mail and discards it, answering the content after latency_ms
    (asyncio.sleep: the other sessions go on meanwhile). Our own tiny handler, because
    aiosmtpd.handlers imports the standard library's mailbox, which calmail's package
    shadows.

    aiosmtpd does not advertise PIPELINING (it reads pipelined commands in order all the
    same); with pipelining the EHLO hook adds it, as smtp-sink and Postfix do. It counts
    SMTP sessions (connections that said EHLO or HELO; the readiness probe does not), the
    most open at once, the mails and the most mails waiting for their reply at once; on
    SIGUSR1 it writes them to stats_path as JSON (written aside, then renamed)."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    delay = latency_ms / 1000
    figures = {
        "sessions": 0,
        "open": 0,
        "max_open": 0,
        "mails": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "first_mail": None,
        "last_mail": None,
    }

    def session_started(server) -> None:
        if not getattr(server, "bench_counted", False):
            server.bench_counted = True
            figures["sessions"] += 1
            figures["open"] += 1
            figures["max_open"] = max(figures["max_open"], figures["open"])

    class CountingSMTP(SMTP):
        bench_counted = False

        def connection_lost(self, error):
            if self.bench_counted:
                self.bench_counted = False
                figures["open"] -= 1
            super().connection_lost(error)

    class Discard:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session_started(server)
            session.host_name = hostname
            if pipelining:
                # Before the last line ("250 HELP"): only the last one has a space.
                responses.insert(len(responses) - 1, "250-PIPELINING")
            return responses

        async def handle_HELO(self, server, session, envelope, hostname):
            session_started(server)
            session.host_name = hostname
            return f"250 {server.hostname}"

        async def handle_DATA(self, server, session, envelope):
            figures["in_flight"] += 1
            figures["max_in_flight"] = max(figures["max_in_flight"], figures["in_flight"])
            try:
                if delay:
                    await asyncio.sleep(delay)
            finally:
                figures["in_flight"] -= 1
            now = time.monotonic()
            figures["mails"] += 1
            if figures["first_mail"] is None:
                figures["first_mail"] = now
            figures["last_mail"] = now
            return "250 2.0.0 Ok: discarded"

    def write_figures() -> None:
        if not stats_path:
            return
        aside = f"{stats_path}.part"
        with open(aside, "w") as file:
            json.dump(figures, file)
        os.replace(aside, stats_path)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Discard()
        server = await loop.create_server(
            lambda: CountingSMTP(handler, hostname="bench.invalid", ident="calmail bench"),
            host=LOCALHOST,
            port=port,
            backlog=1000,
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, write_figures)
        async with server:
            await stop.wait()

    asyncio.run(main())


def start_aiosmtpd(
    directory: Path, *, latency_ms: float, pipelining: bool, name: str
) -> tuple[object, int, Path]:
    """Start serve_aiosmtpd in its own process; (process, port, the file of its figures)."""
    port = free_port()
    stats_path = directory / f"{name}-figures.json"
    command = [
        sys.executable,
        __file__,
        "--serve-aiosmtpd",
        str(port),
        "--latency",
        str(latency_ms),
        "--pipelining",
        "on" if pipelining else "off",
        "--serve-figures",
        str(stats_path),
    ]
    log_path = directory / f"{name}.log"
    process = start_group(command, log_path=log_path, cwd=directory)
    _wait_greeting(process, port, log_path, what=f"the aiosmtpd server on port {port}")
    return process, port, stats_path


def server_figures(process, stats_path: Path) -> dict:
    """What serve_aiosmtpd counted so far (it writes them on SIGUSR1)."""
    stats_path.unlink(missing_ok=True)
    os.kill(process.pid, signal.SIGUSR1)
    wait_until(stats_path.exists, timeout=10, what="the SMTP server's figures")
    return json.loads(stats_path.read_text())


def _wait_greeting(process, port: int, log_path: Path, *, what: str) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"The SMTP server exited:\n{tail(log_path)}")
        return smtp_greets(port)

    wait_until(up, timeout=20, what=what)


def start_smtp_server(directory: Path) -> tuple[object, int, str]:
    if not os.access(SMTP_SINK, os.X_OK):
        process, port, _figures = start_aiosmtpd(
            directory, latency_ms=0, pipelining=True, name="smtp"
        )
        return process, port, "aiosmtpd (smtp-sink not installed: apt-get install postfix)"
    port = free_port()
    # smtp-sink refuses to run as root without a user to switch to.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    command = [SMTP_SINK, *user, f"{LOCALHOST}:{port}", "1000"]
    log_path = directory / "smtp.log"
    process = start_group(command, log_path=log_path, cwd=directory)
    _wait_greeting(process, port, log_path, what=f"Postfix smtp-sink on port {port}")
    return process, port, "Postfix smtp-sink"


# The broker --------------------------------------------------------------------------------


def choose_broker(directory: Path) -> tuple[str, object]:
    for variable in ("CELERY_BROKER_URL", "REDIS_URL"):
        url = os.environ.get(variable, "")
        if url.startswith(("redis://", "rediss://")):
            if not redis_answers(url):
                raise SystemExit(f"{variable}={url} does not answer PING.")
            return url, None
    if not os.access(REDIS_SERVER, os.X_OK):
        raise SystemExit(
            "No Redis: set CELERY_BROKER_URL=redis://... or install redis-server "
            "(the benchmark then starts a temporary one)."
        )
    port = free_port()
    process = start_group(
        [
            REDIS_SERVER,
            "--bind",
            LOCALHOST,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        log_path=directory / "redis.log",
        cwd=directory,
    )
    url = f"redis://{LOCALHOST}:{port}/0"
    wait_until(lambda: redis_answers(url), timeout=20, what="the temporary redis-server")
    return url, process


# The engine run ----------------------------------------------------------------------------


def start_worker(*, processes: int, directory: Path, environment: dict[str, str], label: str):
    from calmail.celery import app

    name = f"bench-{label}{os.getpid()}@{os.uname().nodename}"
    log_path = directory / f"worker-{label}.log"
    process = start_group(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "calmail",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(processes),
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        log_path=log_path,
        cwd=REPO_ROOT,
        env={**os.environ, **environment},
    )

    def ready() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"The Celery worker exited:\n{tail(log_path)}")
        return bool(app.control.ping(destination=[name], timeout=0.5))

    wait_until(ready, timeout=60, what="the Celery worker to answer a ping")
    return process, log_path


def create_configuration(name: str, port: int, *, is_default: bool, max_connections: int | None):
    """An SMTP configuration for the server on port; max_connections None: the model's
    default."""
    from smtpconfig.models import SmtpConfiguration

    limit = {} if max_connections is None else {"max_connections": max_connections}
    return SmtpConfiguration.objects.create(
        name=name,
        is_default=is_default,
        mailer="smtp",
        host=LOCALHOST,
        port=port,
        security="none",
        smtp_auth=False,
        timeout=30,
        from_email=SENDER,
        # The ceiling reuses one connection for all its mails; so may the engine.
        max_messages_per_connection=100_000,
        **limit,
    )


def mail_fields(number: int, configuration) -> dict:
    """enqueue()'s keyword arguments (and OutgoingMail's fields) for mail number."""
    return {
        "to": [recipient(number)],
        "subject": SUBJECT.format(number=number),
        "body_text": BODY_TEXT.format(number=number),
        "body_html": BODY_HTML.format(number=number),
        "from_email": SENDER,
        "from_name": "calServer",
        "smtp_configuration": configuration,
        "source": "system",
    }


def enqueue_path(choice: str = "auto") -> str:
    """The way in: "enqueue_many" where this checkout has it (unless choice is "per-mail"),
    else "enqueue", one call per mail (an older checkout)."""
    if choice == "per-mail":
        return "enqueue"
    try:
        from mailbox.services import OutgoingMail, enqueue_many  # noqa: F401
    except ImportError:
        return "enqueue"
    return "enqueue_many"


ENQUEUE_PATHS = {
    "enqueue_many": (
        f"mailbox.services.enqueue_many outside a transaction: chunks of {ENQUEUE_CHUNK}, "
        "each committed and nudging delivery"
    ),
    "enqueue": (f"mailbox.services.enqueue() per mail, one transaction per {ENQUEUE_CHUNK} mails"),
}


@dataclass
class Enqueued:
    path: str
    # time.monotonic() at the first enqueue call and when the last one returned.
    started: float
    ended: float
    # CPU seconds this process spent enqueueing.
    cpu: float


def enqueue_all(
    count: int, configuration, *, path: str, at_start=lambda: None, extra: dict | None = None
) -> Enqueued:
    """Enqueue count mails through enqueue_many, or enqueue() per mail (path "enqueue").
    The mails' fields (with extra) are made beforehand; at_start() runs just before the
    clock starts."""
    fields = [{**mail_fields(number, configuration), **(extra or {})} for number in range(count)]
    if path == "enqueue_many":
        from mailbox.services import OutgoingMail, enqueue_many

        mails = [OutgoingMail(**values) for values in fields]
        at_start()
        started, cpu_started = time.monotonic(), time.process_time()
        result = enqueue_many(mails, chunk_size=ENQUEUE_CHUNK)
        ended, cpu = time.monotonic(), time.process_time() - cpu_started
        if result.errors:
            index, error = min(result.errors.items(), key=lambda item: item[0])
            raise SystemExit(
                f"enqueue_many refused {len(result.errors)} of {count} mails; "
                f"the first, #{index}: {error}"
            )
        stored = sum(message is not None for message in result.messages)
        if stored != count:
            raise SystemExit(f"enqueue_many stored {stored} of {count} mails.")
    else:
        from django.db import transaction

        from mailbox.services import enqueue

        at_start()
        started, cpu_started = time.monotonic(), time.process_time()
        for first in range(0, count, ENQUEUE_CHUNK):
            # Committed chunk by chunk like enqueue_many, each commit nudging delivery.
            with transaction.atomic():
                for values in fields[first : first + ENQUEUE_CHUNK]:
                    enqueue(**values)
        ended, cpu = time.monotonic(), time.process_time() - cpu_started
    return Enqueued(path=path, started=started, ended=ended, cpu=cpu)


def wait_all_sent(count: int, *, configuration_id: int, log_path: Path) -> float:
    """Poll until count rows of the configuration are sent; returns the monotonic time it
    was seen.

    The frequent poll only asks whether any mail is still waiting or being sent, which
    the partial indexes of due and sending mail answer at once; counting all rows every
    20 ms would take a noticeable share of the CPU the engine is measured on."""
    from django.db.models import Count

    from mailbox.models import OutboxMessage

    rows = OutboxMessage.objects.filter(smtp_configuration_id=configuration_id)
    unfinished = rows.filter(status__in=["queued", "deferred"])
    sending = rows.filter(status="sending")
    sent = rows.filter(status="sent")
    last_progress = (time.monotonic(), -1)
    last_report = time.monotonic()
    while True:
        now = time.monotonic()
        if not unfinished.exists() and not sending.exists() and sent.count() >= count:
            return now
        if now - last_report > 2:
            done = sent.count()
            say(f"  sent {done}/{count}")
            last_report = now
            if done != last_progress[1]:
                last_progress = (now, done)
            elif now - last_progress[0] > 60:
                statuses = dict(rows.values_list("status").annotate(n=Count("id")).order_by())
                raise SystemExit(
                    f"No progress for 60 s: {statuses}.\nWorker log:\n{tail(log_path)}"
                )
        time.sleep(0.02)


@dataclass
class EngineRun:
    count: int
    enqueued: Enqueued
    # time.monotonic() when every mail was seen sent.
    finished: float
    # CPU seconds per process group, from the first enqueue call to the last mail sent.
    cpu: dict[str, float]
    attempts: int

    @property
    def enqueue_seconds(self) -> float:
        return self.enqueued.ended - self.enqueued.started

    @property
    def after_enqueue_seconds(self) -> float:
        return self.finished - self.enqueued.ended

    @property
    def seconds(self) -> float:
        return self.finished - self.enqueued.started

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def enqueue_rate(self) -> float:
        return self.count / self.enqueue_seconds


def run_engine(
    *,
    label: str,
    count: int,
    configuration,
    path: str,
    processes: int,
    directory: Path,
    environment: dict[str, str],
    groups: dict[str, object],
) -> EngineRun:
    """Start a worker, enqueue count mails for configuration, wait until all are sent, stop
    the worker. The clock runs from the first enqueue call to the last mail sent."""
    from mailbox.models import DeliveryAttempt

    worker_process, worker_log = start_worker(
        processes=processes, directory=directory, environment=environment, label=label
    )
    try:
        groups = {"workers": worker_process.pid, **groups}
        cpu: dict[str, dict | None] = {}
        enqueued = enqueue_all(
            count,
            configuration,
            path=path,
            at_start=lambda: cpu.update(before=cpu_by_group(groups)),
        )
        finished = wait_all_sent(count, configuration_id=configuration.pk, log_path=worker_log)
        cpu["after"] = cpu_by_group(groups)
    finally:
        stop_group(worker_process)
    used = cpu_used(cpu["before"], cpu["after"])
    if used:
        # This process's share: the enqueue (its database work is in "database").
        used = {"workers": used.pop("workers"), "enqueue": enqueued.cpu, **used}
    return EngineRun(
        count=count,
        enqueued=enqueued,
        finished=finished,
        cpu=used,
        attempts=DeliveryAttempt.objects.filter(smtp_configuration=configuration).count(),
    )


def measure_enqueue_alone(count: int, *, path: str) -> float:
    """enqueue_many by itself, after the runs above (their mails stay in the table): count
    mails timed from the first call to the last commit, then removed again. In the engine
    run the workers share the two cores with the enqueue; this is what a mail costs to
    queue. Planned for next year, so they nudge no worker and none is left waiting."""
    from datetime import timedelta

    from django.utils import timezone

    from mailbox.models import OutboxMessage

    configuration = create_configuration(
        "bench-enqueue", free_port(), is_default=False, max_connections=None
    )
    later = timezone.now() + timedelta(days=365)
    enqueued = enqueue_all(count, configuration, path=path, extra={"scheduled_at": later})
    seconds = enqueued.ended - enqueued.started
    say(
        f"enqueue:  alone (no worker running): {count} mails in {seconds:.2f} s = "
        f"{count / seconds:.1f} mails/s, {seconds / count * 1e6:.0f} µs per mail "
        f"({enqueued.cpu / count * 1e6:.0f} µs of it CPU in this process)"
    )
    OutboxMessage.objects.filter(smtp_configuration=configuration).delete()
    configuration.delete()
    return count / seconds


def report_engine(label: str, run: EngineRun) -> None:
    prefix = f"{label}:".ljust(10)
    say(
        f"{prefix}enqueue: {run.count} mails in {run.enqueue_seconds:.2f} s = "
        f"{run.enqueue_rate:.1f} mails/s ({run.enqueued.path})"
    )
    say(
        f"{prefix}last mail sent {run.after_enqueue_seconds:.2f} s after the last enqueue "
        f"returned; {run.seconds:.2f} s from the first enqueue call = {run.rate:.1f} mails/s "
        f"end to end ({run.attempts} delivery attempts recorded)"
    )


# The ceiling -------------------------------------------------------------------------------


def render_message(number: int) -> bytes:
    """The mail as the engine would build it (Django's EmailMultiAlternatives)."""
    from django.core.mail import EmailMultiAlternatives
    from django.core.mail.message import make_msgid

    message = EmailMultiAlternatives(
        subject=SUBJECT.format(number=number),
        body=BODY_TEXT.format(number=number),
        from_email=f"calServer <{SENDER}>",
        to=[recipient(number)],
        headers={"Message-ID": make_msgid(domain="example.com")},
    )
    message.attach_alternative(BODY_HTML.format(number=number), "text/html")
    return message.message().as_bytes(linesep="\r\n")


def _ceiling_sender(port: int, numbers: range, rendered: bool, start, results) -> None:
    messages = [render_message(number) for number in numbers] if rendered else None
    connection = smtplib.SMTP(LOCALHOST, port, timeout=30)
    connection.ehlo()
    start.wait()
    began, cpu_began = time.monotonic(), time.process_time()
    for offset, number in enumerate(numbers):
        raw = messages[offset] if rendered else render_message(number)
        connection.sendmail(SENDER, [recipient(number)], raw)
    ended, cpu = time.monotonic(), time.process_time() - cpu_began
    connection.quit()
    results.put((began, ended, cpu))


def _connected(port: int, processes: int) -> bool:
    """Whether this many client connections to port are established (from /proc/net/tcp)."""
    established = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    columns = line.split()
                    remote_port = int(columns[2].rpartition(":")[2], 16)
                    established += remote_port == port and columns[3] == "01"
        except OSError:
            time.sleep(2)  # not Linux: give the children time instead
            return True
    return established >= processes


def measure_ceiling(
    count: int, port: int, processes: int, *, rendered: bool = True
) -> tuple[float, float]:
    """(seconds, CPU seconds of the sending processes) for count mails over one reused
    connection per process; rendered: the messages are built before the clock starts
    (the raw ceiling), else inside the loop."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    results = context.Queue()
    share = -(-count // processes)
    children = []
    for index in range(processes):
        numbers = range(index * share, min(count, (index + 1) * share))
        child = context.Process(
            target=_ceiling_sender, args=(port, numbers, rendered, start, results)
        )
        child.start()
        children.append(child)
    # Every child renders (raw ceiling) and connects before the start signal.
    wait_until(
        lambda: all(child.is_alive() for child in children) and _connected(port, processes),
        timeout=120,
        what="the ceiling processes to connect",
    )
    start.set()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"A ceiling process failed (exit code {child.exitcode}).")
    seconds = max(end for _, end, _ in spans) - min(begin for begin, _, _ in spans)
    return seconds, sum(cpu for _, _, cpu in spans)


def report_cpu(label: str, used: dict[str, float], count: int, groups: dict) -> None:
    """Print the CPU time per mail of each process group, and the rate the machine's cores
    could carry at that cost: where the CPU, not waiting, is the limit."""
    if not used:
        return
    total = sum(used.values())
    parts = ", ".join(f"{name} {seconds / count * 1000:.3f}" for name, seconds in used.items())
    cores = os.cpu_count() or 1
    say(
        f"cpu:      {label}, ms per mail: {parts}; total {total / count * 1000:.3f} ms, "
        f"so {cores} cores carry at most {cores * count / total:.0f} mails/s"
    )


# Main --------------------------------------------------------------------------------------


def run(options: argparse.Namespace, directory: Path) -> None:
    count, processes = options.count, options.workers
    smtp_process = redis_process = latency_process = None
    database = None
    try:
        broker_url, redis_process = choose_broker(directory)
        source_url = os.environ.get("DATABASE_URL", "")
        if is_postgres(source_url):
            database = throwaway_postgres(source_url)
            database_url = database.__enter__()
            database_label = "PostgreSQL (throwaway database)"
        else:
            database_url = f"sqlite:///{directory / 'bench.sqlite3'}"
            database_label = "SQLite (temporary file; set DATABASE_URL for PostgreSQL)"
        environment = set_environment(
            database_url=database_url,
            broker_url=broker_url,
            var_dir=directory / "var",
            settings_module="calmail.settings",
        )
        setup_django()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        smtp_process, port, smtp_name = start_smtp_server(directory)
        configuration = create_configuration(
            "bench", port, is_default=True, max_connections=options.max_connections
        )
        say(f"database: {database_label}")
        say(f"broker:   {broker_url.split('@')[-1]}")
        say(f"smtp:     {smtp_name} on {LOCALHOST}:{port}")
        say(
            f"mails:    {count}, worker processes: {processes}, "
            f"max_connections: {configuration.max_connections}"
        )
        path = enqueue_path(options.enqueue)
        if path == "enqueue" and options.enqueue == "auto":
            why = " (this checkout has no mailbox.services.enqueue_many)"
        else:
            why = ""
        say(f"enqueue:  {ENQUEUE_PATHS[path]}{why}")
        say("engine:   timed from the first enqueue call to the last mail sent")
        shared_groups = {
            "database": "postgres",
            "broker": redis_process.pid if redis_process else "redis-server",
        }
        if not is_postgres(database_url):
            shared_groups.pop("database")
        engine = run_engine(
            label="engine",
            count=count,
            configuration=configuration,
            path=path,
            processes=processes,
            directory=directory,
            environment=environment,
            groups={"smtp server": smtp_process.pid, **shared_groups},
        )
        report_engine("engine", engine)
        report_cpu("engine", engine.cpu, count, {})

        say("ceiling: plain smtplib, one reused connection per process, mails pre-rendered")
        # The ceiling's short runs swing by a third from one to the next on a shared
        # machine; the median of several is the figure the ratio uses.
        ceilings = []
        for run_number in range(1, options.ceiling_runs + 1):
            sink_before = cpu_by_group({"smtp server": smtp_process.pid})
            ceiling_seconds, ceiling_client_cpu = measure_ceiling(count, port, processes)
            sink_used = cpu_used(sink_before, cpu_by_group({"smtp server": smtp_process.pid}))
            ceilings.append(count / ceiling_seconds)
            say(
                f"ceiling:  run {run_number}: {count} mails in {ceiling_seconds:.2f} s with "
                f"smtplib from {processes} processes = {ceilings[-1]:.1f} mails/s"
            )
            if sink_used and run_number == 1:
                report_cpu("ceiling", {"clients": ceiling_client_cpu, **sink_used}, count, {})
        ceiling = statistics.median(ceilings)
        if options.ceiling_runs > 1:
            say(
                f"ceiling:  median {ceiling:.1f} mails/s of {options.ceiling_runs} runs "
                f"({min(ceilings):.1f} to {max(ceilings):.1f})"
            )
        # For context only: the same with Django building each message inside the loop,
        # work the engine has to do per mail and the raw ceiling leaves out.
        rendering_seconds, _cpu = measure_ceiling(count, port, processes, rendered=False)
        say(
            f"context:  {count / rendering_seconds:.1f} mails/s with smtplib when each mail is "
            f"also built by Django inside the loop"
        )
        stop_group(smtp_process)
        smtp_process = None

        latency_summary = "latency off"
        if options.latency > 0:
            latency_process, latency_port, figures_path = start_aiosmtpd(
                directory,
                latency_ms=options.latency,
                pipelining=options.pipelining == "on",
                name="latency-smtp",
            )
            latency_configuration = create_configuration(
                "bench-latency",
                latency_port,
                is_default=False,
                max_connections=options.max_connections or LATENCY_MAX_CONNECTIONS,
            )
            pipelining = "advertised" if options.pipelining == "on" else "not advertised"
            say(
                f"latency:  aiosmtpd on {LOCALHOST}:{latency_port} answering each mail after "
                f"{options.latency:g} ms, PIPELINING {pipelining}; {options.latency_count} "
                f"mails, worker processes: {processes}, "
                f"max_connections: {latency_configuration.max_connections}"
            )
            latency = run_engine(
                label="latency",
                count=options.latency_count,
                configuration=latency_configuration,
                path=path,
                processes=processes,
                directory=directory,
                environment=environment,
                groups={"smtp server": latency_process.pid, **shared_groups},
            )
            figures = server_figures(latency_process, figures_path)
            report_engine("latency", latency)
            sessions = figures["max_open"]
            limit = sessions / (options.latency / 1000)
            span = (figures["last_mail"] or 0) - (figures["first_mail"] or 0)
            served = f" = {(figures['mails'] - 1) / span:.1f} mails/s" if span > 0 else ""
            say(
                f"latency:  the server saw at most {sessions} sessions open at once "
                f"({figures['sessions']} in all) and at most {figures['max_in_flight']} mails "
                f"waiting for its reply at once; {figures['mails']} mails, "
                f"{span:.2f} s from its first to its last{served}"
            )
            say(
                f"latency:  limit {sessions} sessions / {options.latency / 1000:g} s = "
                f"{limit:.1f} mails/s; end to end {latency.rate:.1f} mails/s"
                + (f" ({latency.rate / limit:.0%} of it)" if limit else "")
            )
            report_cpu("latency", latency.cpu, latency.count, {})
            latency_summary = (
                f"latency {options.latency:g} ms: {latency.rate:.1f} mails/s over {sessions} "
                f"sessions, limit {limit:.1f} mails/s"
            )
        alone = measure_enqueue_alone(count, path=path)
        say(
            f"delivery: {engine.rate:.1f} mails/s end to end (enqueue {alone:.1f} "
            f"mails/s), ceiling {ceiling:.1f} mails/s, ratio {engine.rate / ceiling:.2f}; "
            f"{latency_summary}"
        )
    finally:
        stop_group(smtp_process)
        stop_group(latency_process)
        stop_group(redis_process)
        if database is not None:
            database.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="mails to send (20000)")
    parser.add_argument(
        "--workers", type=int, default=2, help="Celery worker processes and ceiling processes (2)"
    )
    parser.add_argument(
        "--ceiling-runs", type=int, default=3, help="ceiling measurements, median used (3)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=100,
        metavar="MS",
        help="latency phase: the SMTP server answers each mail after MS ms; 0 skips it (100)",
    )
    parser.add_argument(
        "--latency-count", type=int, default=5000, help="mails of the latency phase (5000)"
    )
    parser.add_argument(
        "--pipelining",
        choices=["on", "off"],
        default="on",
        help="whether the latency phase's server offers PIPELINING (on)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="the SMTP configurations' max_connections (default: the model's default for "
        f"the smtp-sink phase, {LATENCY_MAX_CONNECTIONS} for the latency phase)",
    )
    parser.add_argument(
        "--enqueue",
        choices=["auto", "per-mail"],
        default="auto",
        help="auto: enqueue_many where the checkout has it, else enqueue() per mail; "
        "per-mail: enqueue() per mail all the same, for a before/after on one checkout (auto)",
    )
    parser.add_argument("--serve-aiosmtpd", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-figures", metavar="FILE", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_aiosmtpd:
        serve_aiosmtpd(
            arguments.serve_aiosmtpd,
            latency_ms=arguments.latency,
            pipelining=arguments.pipelining == "on",
            stats_path=arguments.serve_figures or "",
        )
        return
    if arguments.count < 1 or arguments.workers < 1 or arguments.ceiling_runs < 1:
        parser.error("--count, --workers and --ceiling-runs must be at least 1")
    if arguments.latency < 0 or arguments.latency_count < 1:
        parser.error("--latency must be at least 0 and --latency-count at least 1")
    if arguments.max_connections is not None and not 1 <= arguments.max_connections <= 100:
        parser.error("--max-connections must be between 1 and 100")
    directory = Path(tempfile.mkdtemp(prefix="calmail-bench-"))
    try:
        run(arguments, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
