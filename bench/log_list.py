"""Log list benchmark: server time of the first page at 5 million log entries, per filter.

    DATABASE_URL=postgres://... python bench/log_list.py [--rows 5000000] [--explain]

Needs PostgreSQL (DATABASE_URL): creates a throwaway database next to the one the URL
names, applies the migrations, fills the log with N entries in one server-side
INSERT ... SELECT over generate_series (plus a tenth as many outbox mails with two
delivery attempts each, for the "Delivery attempts" tab), runs VACUUM ANALYZE, then
requests both lists through Django's test client as an administrator: unfiltered and
with each filter (text filters with a common and a rare value), then sorted by each
sortable column. Each request runs once to warm up, then the median of --repeat runs is
taken. The database is dropped at the end.

Timings are printed, never asserted (target: 200 ms). The last line is
``log_list: worst first page T ms at N rows`` (T: the worst unfiltered or filtered
request of the events list, N: the log entries).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_client_on_throwaway_postgres, is_postgres, say
from bench.outbox_list import Case, explain, measure

TARGET_MS = 200

LEVEL = (
    "(CASE WHEN g % 100 < 10 THEN 'debug' WHEN g % 100 < 85 THEN 'info' "
    "WHEN g % 100 < 97 THEN 'warning' ELSE 'error' END)"
)
CATEGORY = (
    "(ARRAY['delivery','delivery','delivery','delivery','scheduler','scheduler','scheduler',"
    "'configuration','template','action','compose','delivery','scheduler','delivery',"
    "'delivery','scheduler','configuration','delivery','scheduler','security'])[1 + g % 20]"
)
AUDIT = "(CASE WHEN g % 37 = 0 THEN 'updated' ELSE '' END)"
ACTOR = "(CASE WHEN g % 10 = 3 THEN ($users)[1 + (g / 10) % $user_count] END)"
# The message as stored: a msgid per category, parameters that fill it.
COLUMNS = {
    "time": "now() - g * interval '6 seconds'",
    "level": LEVEL,
    "category": CATEGORY,
    "actor_id": ACTOR,
    "actor_label": f"CASE WHEN {ACTOR} IS NULL THEN 'system' ELSE 'user' || (1 + (g / 10) % $user_count) END",
    "content_type_id": "$mail_type",
    "object_id": "g % 1000000",
    "object_label": "'Calibration due: instrument INV-' || g || ' → user' || (g % 25000) || '@customer' || (g % 700) || '.example.com'",
    "message": f"CASE WHEN {AUDIT} <> '' THEN '%(object)s changed: %(fields)s' "
    "ELSE 'Run of %(action)s finished: %(sent)s mails queued, %(skipped)s skipped' END",
    "params": "jsonb_build_object('action', 'Calibration reminder ' || (g % 40), 'sent', g % 500, "
    "'skipped', g % 7, 'object', 'INV-' || g, 'fields', 'port')",
    "details": "jsonb_build_object('run', g, 'worker', 'celery@w' || (g % 8))",
    "group_id": "(ARRAY[$groups, NULL])[1 + g % $group_slots]",
    "audit_action": AUDIT,
    "changes": f"CASE WHEN {AUDIT} <> '' THEN jsonb_build_object('port', jsonb_build_array(25, 587)) ELSE '{{}}'::jsonb END",
    "search_text": "'Run of Calibration reminder ' || (g % 40) || ' finished: ' || (g % 500) "
    "|| ' mails queued' || chr(10) || 'Lauf von Calibration reminder ' || (g % 40) || "
    "' beendet' || chr(10) || 'Calibration due: instrument INV-' || g || ' → user' || (g % 25000) "
    "|| '@customer' || (g % 700) || '.example.com' || chr(10) || "
    "'{\"run\": ' || g || ', \"worker\": \"celery@w' || (g % 8) || '\"}'",
}


def _substitute(expression: str, values: dict[str, object]) -> str:
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        expression = expression.replace(f"${name}", str(value))
    return expression


def fill(rows: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    from bench import outbox_list
    from mailbox.models import DeliveryAttempt, OutboxMessage
    from maillog.models import LogEntry

    # Columns the outbox gained after bench/outbox_list.py was written (nullable ones,
    # e.g. a link to a mail action) are left empty here: the log does not read them.

    for field in OutboxMessage._meta.concrete_fields:
        if field.null and field.column not in outbox_list.COLUMNS:
            outbox_list.COLUMNS[field.column] = "NULL"
    mails = max(1, rows // 10)
    outbox_list.fill(mails)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DeliveryAttempt._meta.db_table} "  # noqa: S608 - our own SQL
            "(message_id, smtp_configuration_id, started_at, duration_ms, worker, outcome, "
            "reply_code, reply_text) "
            "SELECT m.id, m.smtp_configuration_id, m.created_at + a * interval '2 minutes', "
            "80 + (m.id % 400), 'celery@w' || (m.id % 8), "
            "CASE WHEN a = 1 AND m.id % 10 = 0 THEN 'deferred' ELSE 'sent' END, "
            "CASE WHEN a = 1 AND m.id % 10 = 0 THEN 451 ELSE 250 END, "
            "CASE WHEN a = 1 AND m.id % 10 = 0 THEN '4.7.0 Try again later' "
            "ELSE '2.0.0 Ok: queued as ' || m.id END "
            f"FROM {OutboxMessage._meta.db_table} m, generate_series(1, 2) a"
        )
    say(f"filled {2 * mails} delivery attempts in {time.monotonic() - started:.1f} s")

    users = [get_user_model().objects.create_user(username=f"user{n}") for n in range(1, 21)]
    groups = list(Group.objects.filter(name__startswith="Laboratory").order_by("pk"))
    values = {
        "users": "ARRAY[" + ", ".join(str(user.pk) for user in users) + "]",
        "user_count": len(users),
        "groups": ", ".join(str(group.pk) for group in groups),
        "group_slots": len(groups) + 1,
        "mail_type": ContentType.objects.get_for_model(OutboxMessage).pk,
    }
    columns = [field.column for field in LogEntry._meta.concrete_fields if field.column != "id"]
    missing = [column for column in columns if column not in COLUMNS]
    if missing:
        raise SystemExit(f"bench/log_list.py does not know how to fill {', '.join(missing)}.")
    select = ", ".join(_substitute(COLUMNS[column], values) for column in columns)
    column_list = ", ".join(f'"{column}"' for column in columns)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LogEntry._meta.db_table} ({column_list}) "  # noqa: S608 - our own SQL
            f"SELECT {select} FROM generate_series(1, {int(rows)}) AS g"
        )
    say(f"filled {rows} log entries in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    with connection.cursor() as cursor:
        for table in (LogEntry._meta.db_table, DeliveryAttempt._meta.db_table):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size(%s))", [LogEntry._meta.db_table]
        )
        size = cursor.fetchone()[0]
    say(f"VACUUM ANALYZE in {time.monotonic() - started:.1f} s; log table with indexes: {size}")
    return {"user": users[0], "mail_type": values["mail_type"], "configuration": _configuration()}


def _configuration():
    from smtpconfig.models import SmtpConfiguration

    return SmtpConfiguration.objects.order_by("pk").last()


def event_cases(data: dict) -> list[Case]:
    from maillog.filters import LogEntryFilter

    day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 10 * 86400))
    found = {
        "q": [
            ("common", {"q": "reminder 17"}),
            ("rare", {"q": "INV-4999 "}),
            ("details, common", {"q": "celery@w3"}),
            ("nothing", {"q": "no such entry"}),
        ],
        "time": [("one day", {"time_min": day, "time_max": day})],
        "level": [("error", {"level": "error"}), ("debug", {"level": "debug"})],
        "category": [
            ("delivery", {"category": "delivery"}),
            ("security (rare)", {"category": "security"}),
        ],
        "actor": [("one user", {"actor": str(data["user"].pk)})],
        "content_type": [("outbox mail", {"content_type": str(data["mail_type"])})],
        "object_id": [("one mail", {"content_type": str(data["mail_type"]), "object_id": "4242"})],
        "audit_action": [("updated", {"audit_action": "updated"})],
    }
    unknown = set(LogEntryFilter.base_filters) - set(found)
    if unknown:
        raise SystemExit(f"bench/log_list.py has no value for the filters {sorted(unknown)}.")
    return [
        Case(label=f"{name}: {label}", query=query)
        for name, values in found.items()
        for label, query in values
    ]


def attempt_cases(data: dict) -> list[Case]:
    day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 10 * 86400))
    return [
        Case("attempts: unfiltered", {}),
        Case("attempts: one day", {"started_at_min": day, "started_at_max": day}),
        Case("attempts: configuration", {"smtp_configuration": str(data["configuration"].pk)}),
        Case("attempts: deferred", {"outcome": "deferred"}),
        Case("attempts: reply code 4xx", {"reply_code_min": "400", "reply_code_max": "499"}),
        Case("attempts: worker", {"worker": "celery@w3"}),
        Case("attempts: one mail", {"message": "4242"}),
    ]


def sort_cases() -> list[Case]:
    from maillog.models import LogEntry
    from maillog.tables import LogEntryTable

    table = LogEntryTable(LogEntry.objects.none())
    return [
        Case(label=f"sort {prefix}{column.name}", query={"sort": prefix + column.name})
        for column in table.columns
        if column.orderable
        for prefix in ("", "-")
    ]


def run(rows: int, repeat: int, show_plans: bool, directory: Path) -> None:
    with admin_client_on_throwaway_postgres(directory) as client:
        from django.urls import reverse

        data = fill(rows)

        def table(title, url, cases):
            say("")
            say(f"{title:<40} {'request ms':>10} {'SQL ms':>8}")
            results, plans = [], []
            for case in cases:
                request_ms, sql_ms, slowest = measure(client, url, case, repeat)
                miss = "  > target" if request_ms > TARGET_MS else ""
                say(f"{case.label:<40} {request_ms:>10.1f} {sql_ms:>8.1f}{miss}")
                results.append((case, request_ms))
                if miss and show_plans:
                    plans.append((case, slowest))
            for case, sql in plans:
                say(f"\nEXPLAIN ANALYZE, slowest query of {case.label} ({case.query}):")
                say(explain(sql))
            return results

        events = table(
            "first page of the log",
            reverse("maillog:list"),
            [Case("unfiltered", {}), *event_cases(data)],
        )
        attempts = table(
            "first page of delivery attempts", reverse("mailbox:attempts"), attempt_cases(data)
        )
        sorts = table("first page of the log, sorted", reverse("maillog:list"), sort_cases())
        say("")
        misses = [case.label for case, ms in [*events, *attempts, *sorts] if ms > TARGET_MS]
        if misses:
            say(f"over {TARGET_MS} ms: {', '.join(misses)}")
        worst_attempt = max(attempts, key=lambda result: result[1])
        say(
            f"attempts: worst first page {worst_attempt[1]:.1f} ms ({worst_attempt[0].label}) at {2 * max(1, rows // 10)} attempts"
        )
        worst_sort = max(sorts, key=lambda result: result[1])
        say(f"sorting: worst first page {worst_sort[1]:.1f} ms ({worst_sort[0].label})")
        worst = max(ms for _case, ms in events)
        say(f"log_list: worst first page {worst:.1f} ms at {rows} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="log entries (5000000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per request (3)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE misses")
    arguments = parser.parse_args()
    if arguments.rows < 1 or arguments.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    if not is_postgres(os.environ.get("DATABASE_URL")):
        raise SystemExit(
            "bench/log_list.py needs PostgreSQL: run it with "
            "DATABASE_URL=postgres://user@host:5432/dbname (a throwaway database is created "
            "next to dbname and dropped at the end)."
        )
    directory = Path(tempfile.mkdtemp(prefix="calmail-bench-"))
    try:
        run(arguments.rows, arguments.repeat, arguments.explain, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
