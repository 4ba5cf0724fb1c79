"""Delivery benchmark: mails per second through the real engine, against a plain-smtplib ceiling.

    python bench/delivery.py [--count 20000] [--workers 2]

1. A throwaway database: a new PostgreSQL database when DATABASE_URL points to PostgreSQL
   (dropped at the end), else a temporary SQLite file; migrations applied.
2. A real SMTP server on loopback in a separate process: Postfix's smtp-sink when it is
   installed (Debian package postfix; only the binary is used, no Postfix daemon), else a
   minimal aiosmtpd server that accepts and discards.
3. The broker: CELERY_BROKER_URL or REDIS_URL when one is a redis:// URL, else a temporary
   redis-server.
4. A Celery worker with --concurrency 2 (two worker processes, one per core of the
   reference machine) is started and idle; then N mails are enqueued through
   mailbox.services.enqueue in one transaction. The clock starts at the commit (the first
   dispatch) and stops when every row is "sent".
5. The ceiling: the same number of mails, pre-rendered, sent with plain smtplib over one
   reused connection from each of 2 processes to the same server; measured
   --ceiling-runs times (3), the median counts.

Timings are printed, never asserted. The last line is
``delivery: R mails/s end to end, ceiling C mails/s, ratio X``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import smtplib
import statistics
import sys
import tempfile
import time
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


# The SMTP server ---------------------------------------------------------------------------


def serve_aiosmtpd(port: int) -> None:
    """The fallback server (run as `delivery.py --serve-aiosmtpd PORT` in its own process):
    accepts every mail and discards it. Our own tiny handler, because aiosmtpd.handlers
    imports the standard library's mailbox, which calmail's package shadows."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 Ok: discarded"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Discard(), hostname="bench.invalid", ident="calmail bench"),
            host=LOCALHOST,
            port=port,
            backlog=1000,
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


def start_smtp_server(directory: Path) -> tuple[object, int, str]:
    port = free_port()
    if os.access(SMTP_SINK, os.X_OK):
        # smtp-sink refuses to run as root without a user to switch to.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [SMTP_SINK, *user, f"{LOCALHOST}:{port}", "1000"]
        name = "Postfix smtp-sink"
    else:
        command = [sys.executable, __file__, "--serve-aiosmtpd", str(port)]
        name = "aiosmtpd (smtp-sink not installed: apt-get install postfix)"
    log_path = directory / "smtp.log"
    process = start_group(command, log_path=log_path, cwd=directory)

    def up() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"The SMTP server exited:\n{tail(log_path)}")
        return smtp_greets(port)

    wait_until(up, timeout=20, what=f"{name} on port {port}")
    return process, port, name


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


def start_worker(*, processes: int, directory: Path, environment: dict[str, str]):
    from calmail.celery import app

    name = f"bench{os.getpid()}@{os.uname().nodename}"
    log_path = directory / "worker.log"
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


def enqueue_all(count: int, configuration, *, at_commit=lambda: None) -> list:
    """Enqueue count mails in one transaction; returns [commit start, commit end] times.
    at_commit() is called just before the commit, where the clock starts."""
    from django.db import transaction

    from mailbox.services import enqueue

    started = time.monotonic()
    commit: list[float] = []
    with transaction.atomic():
        for number in range(count):
            enqueue(
                to=[recipient(number)],
                subject=SUBJECT.format(number=number),
                body_text=BODY_TEXT.format(number=number),
                body_html=BODY_HTML.format(number=number),
                from_email=SENDER,
                from_name="calServer",
                smtp_configuration=configuration,
                source="system",
            )
            if number and number % 5000 == 0:
                say(f"  enqueued {number} ({time.monotonic() - started:.1f} s)")
        say(f"  enqueued {count} in {time.monotonic() - started:.1f} s; committing")
        # The on_commit dispatch runs inside the commit: mark both ends.
        at_commit()
        commit.append(time.monotonic())
    commit.append(time.monotonic())
    return commit


def wait_all_sent(count: int, *, configuration_id: int, log_path: Path) -> float:
    """Poll until count rows are sent; returns the monotonic time it was seen.

    The frequent poll only asks whether any mail is still waiting or being sent, which
    the partial indexes of due and sending mail answer at once; counting all rows every
    20 ms would take a noticeable share of the CPU the engine is measured on."""
    from django.db.models import Count

    from mailbox.models import OutboxMessage

    unfinished = OutboxMessage.objects.filter(
        smtp_configuration_id=configuration_id, status__in=["queued", "deferred"]
    )
    sending = OutboxMessage.objects.filter(status="sending")
    last_progress = (time.monotonic(), -1)
    last_report = time.monotonic()
    while True:
        now = time.monotonic()
        if (
            not unfinished.exists()
            and not sending.exists()
            and OutboxMessage.objects.filter(status="sent").count() >= count
        ):
            return now
        if now - last_report > 2:
            sent = OutboxMessage.objects.filter(status="sent").count()
            say(f"  sent {sent}/{count}")
            last_report = now
            if sent != last_progress[1]:
                last_progress = (now, sent)
            elif now - last_progress[0] > 60:
                statuses = dict(
                    OutboxMessage.objects.values_list("status").annotate(n=Count("id")).order_by()
                )
                raise SystemExit(
                    f"No progress for 60 s: {statuses}.\nWorker log:\n{tail(log_path)}"
                )
        time.sleep(0.02)


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


def run(count: int, processes: int, directory: Path, *, ceiling_runs: int = 3) -> None:
    smtp_process = redis_process = worker_process = None
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

        from smtpconfig.models import SmtpConfiguration

        call_command("migrate", verbosity=0)
        smtp_process, port, smtp_name = start_smtp_server(directory)
        configuration = SmtpConfiguration.objects.create(
            name="bench",
            is_default=True,
            mailer="smtp",
            host=LOCALHOST,
            port=port,
            security="none",
            smtp_auth=False,
            timeout=30,
            from_email=SENDER,
            max_connections=processes,
            # The ceiling reuses one connection for all its mails; so may the engine.
            max_messages_per_connection=100_000,
        )
        say(f"database: {database_label}")
        say(f"broker:   {broker_url.split('@')[-1]}")
        say(f"smtp:     {smtp_name} on {LOCALHOST}:{port}")
        say(f"mails:    {count}, worker processes: {processes}")

        worker_process, worker_log = start_worker(
            processes=processes, directory=directory, environment=environment
        )
        say("enqueueing (setup, not timed)")
        groups = {
            "workers": worker_process.pid,
            "database": "postgres",
            "smtp server": smtp_process.pid,
            "broker": redis_process.pid if redis_process else "redis-server",
        }
        engine_cpu: dict[str, dict | None] = {}
        commit_start, commit_end = enqueue_all(
            count,
            configuration,
            at_commit=lambda: engine_cpu.update(before=cpu_by_group(groups)),
        )
        say(f"  commit, with its on_commit dispatch, took {commit_end - commit_start:.2f} s")
        finished = wait_all_sent(count, configuration_id=configuration.pk, log_path=worker_log)
        engine_cpu["after"] = cpu_by_group(groups)
        engine_seconds = finished - commit_start
        stop_group(worker_process)
        worker_process = None

        from mailbox.models import DeliveryAttempt

        attempts = DeliveryAttempt.objects.count()
        rate = count / engine_seconds
        say(
            f"engine:   {count} mails in {engine_seconds:.2f} s end to end = {rate:.1f} mails/s "
            f"({attempts} delivery attempts recorded)"
        )
        if not is_postgres(database_url):
            groups.pop("database")
        report_cpu("engine", cpu_used(engine_cpu["before"], engine_cpu["after"]), count, groups)

        say("ceiling: plain smtplib, one reused connection per process, mails pre-rendered")
        # The ceiling's short runs swing by a third from one to the next on a shared
        # machine; the median of several is the figure the ratio uses.
        ceilings = []
        for run_number in range(1, ceiling_runs + 1):
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
        if ceiling_runs > 1:
            say(
                f"ceiling:  median {ceiling:.1f} mails/s of {ceiling_runs} runs "
                f"({min(ceilings):.1f} to {max(ceilings):.1f})"
            )
        # For context only: the same with Django building each message inside the loop,
        # work the engine has to do per mail and the raw ceiling leaves out.
        rendering_seconds, _cpu = measure_ceiling(count, port, processes, rendered=False)
        say(
            f"context:  {count / rendering_seconds:.1f} mails/s with smtplib when each mail is "
            f"also built by Django inside the loop"
        )
        say(
            f"delivery: {rate:.1f} mails/s end to end, ceiling {ceiling:.1f} mails/s, "
            f"ratio {rate / ceiling:.2f}"
        )
    finally:
        stop_group(worker_process)
        stop_group(smtp_process)
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
    parser.add_argument("--serve-aiosmtpd", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_aiosmtpd:
        serve_aiosmtpd(arguments.serve_aiosmtpd)
        return
    if arguments.count < 1 or arguments.workers < 1 or arguments.ceiling_runs < 1:
        parser.error("--count, --workers and --ceiling-runs must be at least 1")
    directory = Path(tempfile.mkdtemp(prefix="calmail-bench-"))
    try:
        run(arguments.count, arguments.workers, directory, ceiling_runs=arguments.ceiling_runs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
