"""Scheduler benchmark: tick cost against the number of actions, and one run's fan-out.

    python bench/scheduler.py [--small 1000] [--large 100000] [--customers 5000]
                              [--audience-customers 10000] [--audience-instruments 100000]
                              [--fanout-only] [--audience-only] [--profile FILE]

1. A throwaway database: a new PostgreSQL database when DATABASE_URL points to PostgreSQL
   (dropped at the end), else a temporary SQLite file; migrations applied.
2. Tick cost: --small actions of which 10 are due, then --large; each figure is the median
   of 7 ticks (actions.scheduler.tick, the beat task's body, without dispatching), the 10
   due actions reset before each. The target is O(due actions): a ratio near 1.
3. Fan-out: an action to --customers customers, each with an overdue instrument, so each
   mail carries an Excel report of its own. The run (actions.runs.run_execute, the
   worker task's body) executes in a child process; the time until every mail is queued
   in the outbox, the child's peak resident memory, and the CPU time the child and its
   PostgreSQL backend used (steadier than the wall time on a busy machine) are printed.

4. Audience fan-out (first, before 3, so that only its own customers match): an action to
   the audience "customers with matching records" (audience:matching_customers) over
   --audience-customers customers with --audience-instruments instruments, made as
   ``manage.py seed_demo`` makes them (due dates spread around today, 0-3 contact
   addresses per customer); every customer with a due or overdue instrument gets one mail
   per contact address, each with an Excel report of only their rows. Measured like 3.

--fanout-only skips 2, --audience-only skips 2 and 3; --profile FILE runs the fan-out
children under cProfile and writes their statistics to FILE (the audience's to
FILE.audience; read them with ``python -m pstats FILE``; the profiler makes the run 2-3
times slower).

Timings are printed, never asserted. The last line is ``scheduler: tick T ms at 100000
actions, ratio 100k/1k R; fanout 5000 in S s, peak M MB; audience fanout 10000 in S s,
peak M MB`` (without the parts skipped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO_ROOT,
    is_postgres,
    say,
    set_environment,
    setup_django,
    throwaway_postgres,
)

DUE = 10
ROUNDS = 7


def base_objects():
    from django.contrib.auth.models import Group

    from smtpconfig.models import SmtpConfiguration
    from templates_app.models import MailTemplate

    group = Group.objects.create(name="Bench team")
    configuration = SmtpConfiguration.objects.create(
        name="Bench", host="127.0.0.1", port=2525, security="none", from_email="bench@example.com"
    )
    template = MailTemplate.objects.create(
        name="Bench reminder",
        template_type="inventory",
        report="instruments_due",
        due_filter="due_overdue",
        due_window_days=30,
        add_attachment="report",
        export_type="excel",
        attachment_type="file",
        default_language="de",
        from_email="labor@example.com",
    )
    template.translations.create(
        language="de",
        subject="Fällige Prüfmittel für {{ recipient.name }}",
        body_html="<p>Guten Tag {{ recipient.name }},</p><p>{{ count }} Prüfmittel sind fällig.</p>",
    )
    return group, configuration, template


def add_actions(count: int, *, start_index: int, objects, future: dt.datetime) -> None:
    from actions.models import Action

    group, configuration, template = objects
    batch = []
    for index in range(start_index, start_index + count):
        batch.append(
            Action(
                description=f"Bench action {index}",
                time_of_day=dt.time(7),
                start=future - dt.timedelta(days=400),
                group=group,
                template=template,
                smtp_configuration=configuration,
                recipients=["ops@example.com"],
                # Spread over the next year, like real schedules.
                next_due_at=future + dt.timedelta(minutes=index % 525_600),
            )
        )
        if len(batch) == 5000:
            Action.objects.bulk_create(batch)
            batch = []
    if batch:
        Action.objects.bulk_create(batch)


def analyze() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def measure_tick(due_ids: list[int], slot: dt.datetime) -> float:
    from actions.models import Action, ActionRun
    from actions.scheduler import tick

    timings = []
    for _round in range(ROUNDS):
        ActionRun.objects.all().delete()
        Action.objects.filter(pk__in=due_ids).update(next_due_at=slot)
        started = time.perf_counter()
        made = tick(now=slot + dt.timedelta(seconds=5))
        timings.append((time.perf_counter() - started) * 1000)
        if len(made) != len(due_ids):
            raise SystemExit(f"tick made {len(made)} runs, expected {len(due_ids)}")
    return statistics.median(timings)


def prepare_fanout(customers: int, objects) -> int:
    from django.utils import timezone

    from actions.models import Action, ActionRun, Trigger
    from inventory.models import Customer, CustomerContact, Instrument

    group, configuration, template = objects
    today = timezone.localdate()
    Customer.objects.bulk_create(
        Customer(number=f"B{n:06d}", name=f"Bench Kunde {n} GmbH", language="de")
        for n in range(customers)
    )
    ids = list(Customer.objects.filter(number__startswith="B").values_list("pk", flat=True))
    CustomerContact.objects.bulk_create(
        CustomerContact(customer_id=pk, email=f"labor{pk}@kunde.example") for pk in ids
    )
    Instrument.objects.bulk_create(
        Instrument(
            inventory_number=f"BINV-{pk:07d}",
            description="Digitalmultimeter",
            manufacturer="Fluke",
            model="87V",
            customer_id=pk,
            last_calibration=today - dt.timedelta(days=400),
            calibration_interval_months=12,
            next_due_date=today - dt.timedelta(days=35),
        )
        for pk in ids
    )
    action = Action.objects.create(
        description="Bench fan-out",
        time_of_day=dt.time(7),
        start=timezone.now() - dt.timedelta(days=1),
        group=group,
        template=template,
        smtp_configuration=configuration,
        recipients=[f"customer:{pk}" for pk in ids],
    )
    return ActionRun.objects.create(action=action, slot=timezone.now(), trigger=Trigger.MANUAL).pk


def prepare_audience_fanout(customers: int, instruments: int, objects) -> int:
    """seed_demo's data (its Seeder, a fixed seed) and an action to the audience of the
    customers with matching records; returns the run to execute."""
    import random

    from django.db import transaction
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat
    from django.utils import timezone

    from actions.models import Action, ActionRun, Trigger
    from inventory.management.commands.seed_demo import Counts, Seeder
    from inventory.models import CustomerContact

    group, configuration, template = objects
    with transaction.atomic():
        Seeder(random.Random(4711), batch_size=5000).run(  # noqa: S311 - demo data
            Counts(customers, instruments, 0), first=False
        )
        # seed_demo's customers share addresses (a few hundred domains); a run mails an
        # address once. Each customer's own addresses: one mail per contact as measured.
        CustomerContact.objects.update(
            email=Concat(
                Value("k"),
                Cast("customer_id", CharField()),
                Value("."),
                "email",
                output_field=CharField(),
            )
        )
    analyze()
    action = Action.objects.create(
        description="Bench audience fan-out",
        time_of_day=dt.time(7),
        start=timezone.now() - dt.timedelta(days=1),
        group=group,
        template=template,
        smtp_configuration=configuration,
        recipients=["audience:matching_customers"],
    )
    return ActionRun.objects.create(action=action, slot=timezone.now(), trigger=Trigger.MANUAL).pk


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds a PostgreSQL backend has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fanout_child(run_id: int, profile: str | None = None) -> None:
    setup_django()
    from django.db import connection

    from actions.runs import run_execute

    backend = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    cpu_before, backend_before = _own_cpu(), _backend_cpu(backend)
    started = time.perf_counter()
    if profiler is not None:
        run = profiler.runcall(run_execute, run_id=run_id)
    else:
        run = run_execute(run_id=run_id)
    seconds = time.perf_counter() - started
    cpu, backend_cpu = _own_cpu() - cpu_before, _backend_cpu(backend) - backend_before
    if profiler is not None:
        profiler.dump_stats(profile)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                # On a shared machine the wall time swings; the CPU the run itself used
                # (this process, and its database backend) much less.
                "cpu_seconds": cpu,
                "backend_cpu_seconds": backend_cpu,
                "peak_mb": peak,
                "queued": run.queued_count,
                "skipped": run.skipped_count,
                "failed": run.failed_count,
            }
        )
    )


def run(options) -> None:
    setup_django()
    from django.core.management import call_command
    from django.utils import timezone

    from actions.models import Action

    call_command("migrate", verbosity=0)
    objects = base_objects()
    audience = measure_audience_fanout(options, objects)
    audience_part = (
        f"audience fanout {options.audience_customers} in {audience['seconds']:.1f} s, "
        f"peak {audience['peak_mb']:.0f} MB"
    )
    if options.audience_only:
        say(f"scheduler: {audience_part}")
        return
    if options.fanout_only:
        fanout = measure_fanout(options, objects)
        say(
            f"scheduler: fanout {options.customers} in {fanout['seconds']:.1f} s, "
            f"peak {fanout['peak_mb']:.0f} MB; {audience_part}"
        )
        return
    # Today's 07:00 is the due slot of the 10 due actions (their rule: daily at 07:00).
    slot = timezone.localtime().replace(hour=7, minute=0, second=0, microsecond=0)
    future = slot + dt.timedelta(days=1)

    add_actions(options.small - DUE, start_index=0, objects=objects, future=future)
    add_actions(DUE, start_index=options.small, objects=objects, future=future)
    due_ids = list(Action.objects.order_by("-pk").values_list("pk", flat=True)[:DUE])
    analyze()
    small_ms = measure_tick(due_ids, slot)
    say(f"tick with {options.small} actions ({DUE} due): {small_ms:.1f} ms (median of {ROUNDS})")

    add_actions(options.large - options.small, start_index=10**7, objects=objects, future=future)
    analyze()
    large_ms = measure_tick(due_ids, slot)
    ratio = large_ms / small_ms if small_ms else float("inf")
    say(f"tick with {options.large} actions ({DUE} due): {large_ms:.1f} ms (median of {ROUNDS})")
    say(f"ratio {options.large}/{options.small}: {ratio:.2f} (target <= 1.5, <= 50 ms)")

    fanout = measure_fanout(options, objects)
    say(
        f"scheduler: tick {large_ms:.1f} ms at {options.large} actions, ratio 100k/1k "
        f"{ratio:.2f}; fanout {options.customers} in {fanout['seconds']:.1f} s, "
        f"peak {fanout['peak_mb']:.0f} MB; {audience_part}"
    )


def _run_child(run_id: int, profile: str | None) -> dict:
    """run_execute in a child process (its own peak memory); its figures."""
    command = [sys.executable, __file__, "--fanout-child", str(run_id)]
    if profile:
        command += ["--profile", str(Path(profile).resolve())]
    result = subprocess.run(  # noqa: S603 - our own script
        command,
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"The fan-out run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_audience_fanout(options, objects) -> dict:
    started = time.perf_counter()
    run_id = prepare_audience_fanout(
        options.audience_customers, options.audience_instruments, objects
    )
    say(
        f"audience data: {options.audience_customers} customers, "
        f"{options.audience_instruments} instruments (seed_demo) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    fanout = _run_child(run_id, f"{options.profile}.audience" if options.profile else None)
    say(
        f"audience fan-out (customers with matching records) over "
        f"{options.audience_customers} customers: {fanout['queued']} queued, "
        f"{fanout['skipped']} skipped, {fanout['failed']} failed in {fanout['seconds']:.1f} s, "
        f"peak {fanout['peak_mb']:.0f} MB (target <= 60 s, < 300 MB)"
        + (" [under cProfile]" if options.profile else "")
    )
    per_mail = 1000 / max(fanout["queued"], 1)
    say(
        f"audience fan-out cpu: run process {fanout['cpu_seconds']:.1f} s "
        f"({fanout['cpu_seconds'] * per_mail:.2f} ms per mail), its database backend "
        f"{fanout['backend_cpu_seconds']:.1f} s "
        f"({fanout['backend_cpu_seconds'] * per_mail:.2f} ms per mail)"
    )
    return fanout


def measure_fanout(options, objects) -> dict:
    run_id = prepare_fanout(options.customers, objects)
    fanout = _run_child(run_id, options.profile)
    say(
        f"fan-out to {options.customers} customers: {fanout['queued']} queued, "
        f"{fanout['skipped']} skipped, {fanout['failed']} failed in {fanout['seconds']:.1f} s, "
        f"peak {fanout['peak_mb']:.0f} MB (target <= 20 s, <= 300 MB)"
        + (" [under cProfile]" if options.profile else "")
    )
    per_mail = 1000 / max(options.customers, 1)
    say(
        f"fan-out cpu: run process {fanout['cpu_seconds']:.1f} s "
        f"({fanout['cpu_seconds'] * per_mail:.2f} ms per customer), its database backend "
        f"{fanout['backend_cpu_seconds']:.1f} s "
        f"({fanout['backend_cpu_seconds'] * per_mail:.2f} ms per customer)"
    )
    if options.profile:
        say(f"profile of the fan-out child written to {options.profile}")
    return fanout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--audience-customers", type=int, default=10_000)
    parser.add_argument("--audience-instruments", type=int, default=100_000)
    parser.add_argument(
        "--fanout-only", action="store_true", help="measure the fan-outs only, not the tick"
    )
    parser.add_argument(
        "--audience-only", action="store_true", help="measure the audience fan-out only"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the fan-out child under cProfile, stats to FILE"
    )
    parser.add_argument("--fanout-child", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.fanout_child:
        fanout_child(options.fanout_child, options.profile)
        return

    source_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="calmail-bench-scheduler-") as var_dir:
        if is_postgres(source_url):
            with throwaway_postgres(source_url) as database_url:
                set_environment(
                    database_url=database_url,
                    broker_url="memory://",
                    var_dir=Path(var_dir),
                    settings_module="calmail.settings",
                )
                run(options)
        else:
            set_environment(
                database_url=f"sqlite:///{Path(var_dir) / 'bench.sqlite3'}",
                broker_url="memory://",
                var_dir=Path(var_dir),
                settings_module="calmail.settings",
            )
            run(options)


if __name__ == "__main__":
    main()
