"""Outbox list benchmark: server time of the first page at a million rows, per filter.

    DATABASE_URL=postgres://... python bench/outbox_list.py [--rows 1000000] [--explain]

Needs PostgreSQL (DATABASE_URL): creates a throwaway database next to the one the URL
names, applies the migrations, fills the outbox with N realistic rows in one server-side
INSERT ... SELECT over generate_series, runs VACUUM ANALYZE, then requests the outbox list
through Django's test client as an administrator: unfiltered and with each filter of the
list's filter form (text filters twice: a value many rows contain, and a rare one, which
makes the database look through the most rows), then sorted by each sortable column in
both directions. Each request runs once to warm up, then the median of --repeat runs is
taken. Printed per row: the request's time in the server (view, queries, template) and
the time its SQL took. The database is dropped at the end.

It also requests the overview (the home page, overview.views) as the administrator and
as a viewer of one team (a fifth of the mails), after adding one delivery attempt per
sent or failed mail (the overview's failures per hour come from the attempts).

Timings are printed, never asserted (target: 150 ms each). --explain prints EXPLAIN
ANALYZE of the slowest query of every request over the target. The last line is
``outbox_list: worst first page T ms over K filters at N rows`` (T: the worst of the
unfiltered and filtered requests, K: the filtered requests, N: the rows); the line before
it, ``overview: administrator A ms, team viewer V ms at N rows``, the overview; the one
before that the worst sorted request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_client_on_throwaway_postgres, is_postgres, say

TARGET_MS = 150

# One SQL expression per column of mailbox_outboxmessage, in terms of g (1..N, 1 = newest).
# Distributions: roughly what a year or two of a busy installation looks like.
STATUS = (
    "(CASE WHEN g % 1000 < 900 THEN 'sent' WHEN g % 1000 < 930 THEN 'failed' "
    "WHEN g % 1000 < 950 THEN 'cancelled' WHEN g % 1000 < 965 THEN 'deferred' "
    "WHEN g % 1000 < 980 THEN 'queued' WHEN g % 1000 < 998 THEN 'scheduled' ELSE 'sending' END)"
)
CREATED = "(now() - g * interval '47 seconds')"
COLUMNS = {
    "source": "(ARRAY['action','action','action','action','action','action','action',"
    "'compose','compose','system','test'])[1 + g % 11]",
    "source_label": "CASE WHEN g % 11 < 7 THEN 'Calibration reminder ' || (g % 40) ELSE '' END",
    "recipient": "'user' || (g % 25000) || '@customer' || (g % 700) || '.example.com'",
    "recipient_owner": "'Customer ' || (g % 3000)",
    "address_type": "(ARRAY['user','customer','customer','system','distribution','address'])"
    "[1 + g % 6]",
    "attachment_count": "(ARRAY[0,0,0,1,1,1,1,2,2,3])[1 + g % 10]",
    "export_type": "(ARRAY['','excel','pdf_html','csv','pdf_html'])[1 + g % 5]",
    "parameters": "jsonb_build_object('filter', (ARRAY['due','overdue','due_overdue','all'])"
    "[1 + g % 4], 'days', g % 90, 'report', 'Inventory ' || (g % 12))",
    "attachment_type": "CASE WHEN g % 7 = 0 THEN 'link' ELSE 'file' END",
    "exported_attachments": "(ARRAY[0,0,0,1,1,1,1,1,2,2])[1 + g % 10]",
    "status": STATUS,
    "sent_at": f"CASE WHEN {STATUS} = 'sent' THEN {CREATED} + interval '4 seconds' END",
    "error_message": f"CASE {STATUS} WHEN 'failed' THEN 'The server refused the recipient: "
    "550 5.1.1 <user' || (g % 25000) || '@example.com>: Recipient address rejected' "
    "WHEN 'deferred' THEN 'The server asks to try again later: 421 4.7.0 Too many "
    "connections' ELSE '' END",
    "created_at": CREATED,
    "from_email": "'calibration@calserver.example.com'",
    "from_name": "'calServer'",
    "to": "jsonb_build_array('user' || (g % 25000) || '@customer' || (g % 700) || '.example.com')",
    "cc": "'[]'::jsonb",
    "bcc": "'[]'::jsonb",
    "reply_to": "'[]'::jsonb",
    "subject": "'Calibration due: instrument INV-' || g || ' (' || (g % 12) || ' items)'",
    "body_text": "'Hello,' || chr(10) || 'the instrument INV-' || g || ' is due for calibration "
    "on ' || to_char(" + CREATED + " + interval '30 days', 'YYYY-MM-DD') || '. Please book "
    "the calibration in calServer.' || chr(10) || 'Kind regards' || chr(10) || "
    "'your calibration team'",
    "body_html": "'<p>Hello,</p><p>the instrument <b>INV-' || g || '</b> is due for "
    "calibration on ' || to_char(" + CREATED + " + interval '30 days', 'YYYY-MM-DD') || "
    "'.</p><p>Please book the calibration in calServer.</p>'",
    "headers": "'{}'::jsonb",
    "message_id": "'<' || g || '.bench@calserver.example.com>'",
    # The mail as enqueue() builds it: about 2.5 KB of headers and both bodies.
    "raw_message": "convert_to('Content-Type: multipart/alternative; boundary=\"b' || g || "
    "'\"' || chr(13) || chr(10) || 'Message-ID: <' || g || '.bench@calserver.example.com>' "
    "|| chr(13) || chr(10) || repeat('Hello, the instrument INV-' || g || ' is due. ', 60), "
    "'UTF8')",
    "smtp_configuration_id": "$configuration_a + (g % 5 = 0)::int * ($configuration_b - $configuration_a)",
    "scheduled_at": f"CASE WHEN {STATUS} = 'scheduled' THEN now() + (g % 30) * interval '1 day' END",
    "attempt_count": f"CASE {STATUS} WHEN 'sent' THEN 1 WHEN 'failed' THEN 6 "
    "WHEN 'deferred' THEN 2 ELSE 0 END",
    "next_attempt_at": f"CASE {STATUS} WHEN 'queued' THEN {CREATED} WHEN 'deferred' THEN "
    f"{CREATED} + interval '5 minutes' WHEN 'scheduled' THEN now() + (g % 30) * interval '1 day' END",
    "lease_expires_at": f"CASE WHEN {STATUS} = 'sending' THEN now() + interval '5 minutes' END",
    "claimed_by": f"CASE WHEN {STATUS} = 'sending' THEN 'worker@bench:' || (g % 4) ELSE '' END",
    "idempotency_key": "NULL",
    # The content retention has not run: every mail still has its bodies.
    "content_purged_at": "NULL",
    # Mails written before error texts were stored as msgid + parameters: the list shows
    # error_message (the same rows every release has).
    "error_text": "'{}'::jsonb",
    # The outbox list never joins the action (its label is copied into source_label), so
    # the benchmark needs no action rows.
    "action_id": "NULL",
    "owner_group_id": "(ARRAY[$groups, NULL])[1 + g % $group_slots]",
    "created_by_id": "CASE WHEN g % 11 IN (7, 8) THEN $user END",
}


def _substitute(expression: str, values: dict[str, object]) -> str:
    # Not %-formatting: the expressions are full of SQL's own % (modulo).
    for name, value in values.items():
        expression = expression.replace(f"${name}", str(value))
    return expression


@dataclass(frozen=True)
class Case:
    label: str
    query: dict[str, str]


def fill(rows: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from mailbox.models import OutboxMessage
    from smtpconfig.models import SmtpConfiguration

    columns = [
        field.column for field in OutboxMessage._meta.concrete_fields if field.column != "id"
    ]
    missing = [column for column in columns if column not in COLUMNS]
    if missing:
        raise SystemExit(
            f"bench/outbox_list.py does not know how to fill {', '.join(missing)}: add them to COLUMNS."
        )
    configurations = [
        SmtpConfiguration.objects.create(
            name=name, is_default=index == 0, host=f"smtp{index}.example.com", port=587
        )
        for index, name in enumerate(("Main server", "Newsletter server"))
    ]
    groups = [Group.objects.create(name=f"Laboratory {n}") for n in range(1, 5)]
    creator = get_user_model().objects.create_user(username="bench-creator")
    values = {
        "configuration_a": configurations[0].pk,
        "configuration_b": configurations[1].pk,
        "groups": ", ".join(str(group.pk) for group in groups),
        "group_slots": len(groups) + 1,
        "user": creator.pk,
    }
    select = ", ".join(_substitute(COLUMNS[column], values) for column in columns)
    column_list = ", ".join(f'"{column}"' for column in columns)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxMessage._meta.db_table} ({column_list}) "  # noqa: S608 - our own SQL
            f"SELECT {select} FROM generate_series(1, {int(rows)}) AS g"
        )
    say(f"filled {rows} rows in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {OutboxMessage._meta.db_table}")
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size(%s))", [OutboxMessage._meta.db_table]
        )
        size = cursor.fetchone()[0]
    say(f"VACUUM ANALYZE in {time.monotonic() - started:.1f} s; table with indexes: {size}")


def fill_attempts() -> None:
    """One delivery attempt per sent or failed mail, at its sent time (failed: 4 s after it
    was made), through the mail's configuration: what the delivery engine leaves."""
    from django.db import connection

    from mailbox.models import DeliveryAttempt, OutboxMessage

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {DeliveryAttempt._meta.db_table} "  # noqa: S608 - our own SQL
            "(message_id, smtp_configuration_id, started_at, duration_ms, worker, outcome, "
            "reply_code, reply_text) "
            "SELECT id, smtp_configuration_id, COALESCE(sent_at, created_at + interval '4 "
            "seconds'), 120, 'worker@bench:1', status, "
            "CASE status WHEN 'sent' THEN 250 ELSE 550 END, '' "
            f"FROM {OutboxMessage._meta.db_table} WHERE status IN ('sent', 'failed')"
        )
        cursor.execute(f"VACUUM ANALYZE {DeliveryAttempt._meta.db_table}")
    say(f"added one delivery attempt per sent or failed mail in {time.monotonic() - started:.1f} s")


def team_viewer_client():
    """A viewer of one team (Laboratory 2: a fifth of the mails), signed in."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from calmail.common.roles import VIEWER

    viewer = get_user_model().objects.create_user(username="bench-viewer")
    viewer.groups.add(Group.objects.get(name=VIEWER), Group.objects.get(name="Laboratory 2"))
    client = Client()
    client.force_login(viewer)
    return client


def cases() -> list[Case]:
    """A request per filter of the list's filter form, with values taken from the data above."""
    import django_filters
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from mailbox.filters import OutboxFilter

    team = Group.objects.get(name="Laboratory 2").pk
    creator = get_user_model().objects.get(username="bench-creator").pk

    values: dict[str, list[tuple[str, dict[str, str]]]] = {
        "q": [("common", "customer17."), ("rare", "user24999@customer")],
        "source": [("compose", "compose")],
        "source_label": [("common", "reminder 17"), ("rare", "no such action")],
        "recipient": [("common", "@customer17."), ("rare", "user24999@customer")],
        "recipient_owner": [("common", "Customer 17"), ("rare", "Customer 2999x")],
        "address_type": [("system", "system")],
        "attachment_count": [("3 and more", {"min": "3"})],
        "export_type": [("csv", "csv")],
        "parameters": [("common", "overdue"), ("rare", "no such parameter")],
        "attachment_type": [("link", "link")],
        "exported_attachments": [("2", {"min": "2", "max": "2"})],
        "status": [("failed", "failed"), ("sending (rare)", "sending")],
        "sent_at": [("one day", "day")],
        "error_message": [("common", "Recipient address rejected"), ("rare", "user24999@")],
        "created_at": [("one day", "day")],
        "subject": [("common", "(3 items)"), ("rare", "INV-999999 ")],
        "owner_group": [("one team", str(team))],
        "created_by": [("one user", str(creator))],
    }
    day = time.strftime("%Y-%m-%d", time.localtime(time.time() - 10 * 86400))
    form = OutboxFilter().form
    found = []
    for name, filter_ in OutboxFilter.base_filters.items():
        if name not in values:
            raise SystemExit(f"bench/outbox_list.py has no value for the new filter {name!r}.")
        widget = form.fields[name].widget
        suffixes = getattr(widget, "suffixes", None)
        for label, value in values[name]:
            if isinstance(filter_, django_filters.DateFromToRangeFilter):
                query = {f"{name}_{suffixes[0]}": day, f"{name}_{suffixes[1]}": day}
            elif suffixes:
                query = {
                    f"{name}_{suffix}": value[key]
                    for suffix, key in zip(suffixes, ("min", "max"), strict=True)
                    if key in value
                }
            else:
                query = {name: value}
            found.append(Case(label=f"{name}: {label}", query=query))
    unknown = set(values) - set(OutboxFilter.base_filters)
    if unknown:
        say(f"note: no such filters any more: {', '.join(sorted(unknown))}")
    return found


def sort_cases() -> list[Case]:
    """A request per sortable column of the list, both directions (django-tables2's ?sort=)."""
    from mailbox.models import OutboxMessage
    from mailbox.tables import OutboxTable

    table = OutboxTable(OutboxMessage.objects.none())
    found = []
    for column in table.columns:
        if column.orderable:
            for prefix in ("", "-"):
                found.append(
                    Case(label=f"sort {prefix}{column.name}", query={"sort": prefix + column.name})
                )
    return found


def measure(client, url: str, case: Case, repeat: int) -> tuple[float, float, str]:
    """Median request and SQL time (ms) of case, and the SQL of its slowest query."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    request_times, sql_times = [], []
    slowest = ""
    for run in range(repeat + 1):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, case.query)
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or b"<table" not in response.content:
            raise SystemExit(
                f"{case.label}: the list answered {response.status_code} without a table."
            )
        if run == 0:
            continue  # warm-up: templates, plan cache, buffers
        request_times.append(elapsed)
        sql_times.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
        slowest = max(queries.captured_queries, key=lambda query: float(query["time"]))["sql"]
    return statistics.median(request_times), statistics.median(sql_times), slowest


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(f"    {row[0]}" for row in cursor.fetchall())


def run(rows: int, repeat: int, show_plans: bool, directory: Path) -> None:
    with admin_client_on_throwaway_postgres(directory) as client:
        from django.urls import reverse

        fill(rows)
        url = reverse("mailbox:list")

        results = []
        plans = []
        say("")
        say(f"{'first page of the outbox':<40} {'request ms':>10} {'SQL ms':>8}")
        for case in [Case("unfiltered", {}), *cases()]:
            request_ms, sql_ms, slowest = measure(client, url, case, repeat)
            miss = "  > target" if request_ms > TARGET_MS else ""
            say(f"{case.label:<40} {request_ms:>10.1f} {sql_ms:>8.1f}{miss}")
            results.append((case, request_ms))
            if miss and show_plans:
                plans.append((case, slowest))
        filtered = results[1:]
        say("")
        say(f"{'first page, sorted by a column':<40} {'request ms':>10} {'SQL ms':>8}")
        sorted_results = []
        for case in sort_cases():
            request_ms, sql_ms, slowest = measure(client, url, case, repeat)
            miss = "  > target" if request_ms > TARGET_MS else ""
            say(f"{case.label:<40} {request_ms:>10.1f} {sql_ms:>8.1f}{miss}")
            sorted_results.append((case, request_ms))
            # One plan per column is enough: the other direction reads the same way.
            if miss and show_plans and not case.query["sort"].startswith("-"):
                plans.append((case, slowest))
        fill_attempts()
        say("")
        say(f"{'overview (home page)':<40} {'request ms':>10} {'SQL ms':>8}")
        overview_url = reverse("overview:index")
        overview_results = []
        for label, user_client in (
            ("overview as administrator", client),
            ("overview as team viewer", team_viewer_client()),
        ):
            case = Case(label, {})
            request_ms, sql_ms, slowest = measure(user_client, overview_url, case, repeat)
            miss = "  > target" if request_ms > TARGET_MS else ""
            say(f"{case.label:<40} {request_ms:>10.1f} {sql_ms:>8.1f}{miss}")
            overview_results.append((case, request_ms))
            if miss and show_plans:
                plans.append((case, slowest))
        for case, sql in plans:
            say(f"\nEXPLAIN ANALYZE, slowest query of {case.label} ({case.query}):")
            say(explain(sql))
        worst = max(request_ms for _, request_ms in results)
        misses = [
            case.label
            for case, request_ms in [*results, *sorted_results, *overview_results]
            if request_ms > TARGET_MS
        ]
        say("")
        if misses:
            say(f"over {TARGET_MS} ms: {', '.join(misses)}")
        worst_sort = max(sorted_results, key=lambda result: result[1], default=None)
        if worst_sort:
            say(f"sorting: worst first page {worst_sort[1]:.1f} ms ({worst_sort[0].label})")
        say(
            f"overview: administrator {overview_results[0][1]:.1f} ms, "
            f"team viewer {overview_results[1][1]:.1f} ms at {rows} rows"
        )
        say(
            f"outbox_list: worst first page {worst:.1f} ms over {len(filtered)} filters "
            f"at {rows} rows"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="outbox rows (1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per request (3)")
    parser.add_argument(
        "--explain", action="store_true", help="EXPLAIN ANALYZE the requests over the target"
    )
    arguments = parser.parse_args()
    if arguments.rows < 1 or arguments.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    if not is_postgres(os.environ.get("DATABASE_URL")):
        raise SystemExit(
            "bench/outbox_list.py needs PostgreSQL: run it with "
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
