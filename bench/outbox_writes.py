"""Outbox write benchmark: what each index of the outbox costs per new mail and per status change.

    DATABASE_URL=postgres://... python bench/outbox_writes.py [--rows 200000] [--batch 5000]
                                                              [--repeat 3]

Needs PostgreSQL (DATABASE_URL); without it the script says so and stops. It creates a
throwaway database next to the one the URL names (dropped at the end, also on errors),
applies the migrations and fills the outbox with --rows rows the way bench/outbox_list.py
does (INSERT ... SELECT over generate_series, VACUUM ANALYZE). Two indexes that are not in
the schema are added before the fill, to measure alternatives: one trigram GIN over the
six searched columns together (outbox_search_trgm) and a partial trigram GIN of
error_message (outbox_error_trgm_partial, WHERE error_message <> '').

The work measured, per mail (--batch mails at a time, default 5,000):

- insert: new queued mails with realistic values (raw_message built by mailbox.mime, as
  enqueue() does, about 2.5 KB) in INSERTs of 500 rows, the SQL bulk_create sends;
- status change, the delivery engine's two writes: the claim (status sending, lease,
  worker; one UPDATE per 50 mails, CALMAIL_DELIVERY_BATCH_SIZE) and the outcome (status
  sent, attempt_count, sent_at, next_attempt_at and lease NULL, claimed_by ''; one
  prepared UPDATE per mail, like mailbox.delivery);
- the GIN pending lists of the new entries flushed (gin_clean_pending_list): work that
  fastupdate only postpones to VACUUM or a later insert, counted where it was caused.

Cost is the PostgreSQL backend's CPU time (from /proc: the server must run on this
machine, else wall time stands in) and WAL bytes (EXPLAIN (ANALYZE, WAL) of the
statements: this session's alone, however busy the server).

1. What each index costs (paired runs). On a shared machine the cost of a whole run swings
   by 10 to 25 %, far more than one index costs, so each index is measured in pairs, one
   transaction per index that is rolled back at the end: every chunk of work runs once
   with all indexes (A) and once, in a savepoint that is rolled back, with the index
   dropped (B), B before A and A before B by turns. Inserts: each INSERT of the batch
   twice per side, both sides rolled back (values bound on the server: parsing the 3 MB
   of a client-bound INSERT makes pairs far noisier, for work that is the same on both
   sides); then the batch is inserted for good, and claimed and sent in pairs of 50
   mails, B on rows in the state A found them in. The index's cost is the mean of A - B
   over the pairs (without the highest and lowest tenth), ± its standard error. GIN
   pending lists are flushed after every pair, except the measured index's own (it holds
   A's entries only), whose flush is timed at the end of each phase. Besides each index
   alone: all trigram GIN, all sort indexes, all secondary indexes together, the two
   extra indexes, and the six GIN with fastupdate off instead of on. The extra indexes
   stay in place on both sides of all other pairs.
2. Totals (whole runs): all indexes and the primary key only, and the GIN settings
   (fastupdate off, gin_pending_list_limit 64kB and 32MB instead of 4MB, the one search
   index instead of the six), each in one transaction that is rolled back; the outcome
   UPDATEs one by one as the engine sends them, with their latency percentiles.
3. The list's six text filters (first page, a common and a rare value) on the six trigram
   indexes and on the one search index.

Rounds of all variants run --repeat times in shuffled order; each figure is the median of
the rounds (WAL of whole runs: the least, as a checkpoint during a run only adds full page
images). VACUUM after every transaction, untimed, removes what the rolled-back work left.

Timings are printed, never asserted. The last line is
``outbox_writes: insert I µs/mail, status change S µs/mail; indexes I' and S' of it;
trigram GIN G %`` (the backend's CPU time with all indexes; I', S': what all secondary
indexes cost, from the paired runs; G: the six trigram indexes' share of insert plus
status change).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import is_postgres, say, set_environment, setup_django, throwaway_postgres

CHUNK = 500  # rows per INSERT, as a bulk_create(batch_size=500)
EXPLAIN = "EXPLAIN (ANALYZE, WAL, TIMING OFF, COSTS OFF, SUMMARY OFF, FORMAT JSON) "
OUTCOME_WAL_EVERY = 10  # whole runs: every tenth outcome UPDATE under EXPLAIN, for its WAL
INSERT_PASSES = 2  # paired runs: each INSERT of the batch twice on each side
SEARCH_INDEX = "outbox_search_trgm"
ERROR_PARTIAL_INDEX = "outbox_error_trgm_partial"
EXTRA_INDEXES = (SEARCH_INDEX, ERROR_PARTIAL_INDEX)
# The six text columns the list filters with icontains, as migration 0004 indexes them.
SEARCHED = [
    '"recipient"',
    '"subject"',
    '"source_label"',
    '"recipient_owner"',
    '"error_message"',
    '("parameters")::text',
]
# One text: a line break between the columns, which no filter value (a one-line input)
# contains, so a value found in it is found in one of the columns.
SEARCH_EXPRESSION = "UPPER(" + " || E'\\n' || ".join(SEARCHED) + ")"
WORKER = "worker@bench:1"
MESSAGE_ID_DOMAIN = ".writes@calserver.example.com>"


@dataclass(frozen=True)
class IndexInfo:
    name: str
    kind: str
    size: int
    constraint: bool  # backs a constraint: dropped with ALTER TABLE ... DROP CONSTRAINT


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name() -> str:
    from mailbox.models import OutboxMessage

    return OutboxMessage._meta.db_table


def indexes() -> list[IndexInfo]:
    """Every index of the outbox table, with its kind and size."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, a.amname, i.indisprimary, i.indisunique,
                   i.indpred IS NOT NULL, i.indexprs IS NOT NULL,
                   pg_relation_size(c.oid),
                   EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid
                           AND k.conrelid = i.indrelid)
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am a ON a.oid = c.relam
            WHERE i.indrelid = %s::regclass
            ORDER BY a.amname DESC, c.relname
            """,
            [table_name()],
        )
        rows = cursor.fetchall()
    found = []
    for name, method, primary, unique, partial, expression, size, constraint in rows:
        if primary:
            kind = "pk"
        elif method != "btree":
            kind = method
        elif partial:
            kind = "partial"
        elif unique:
            kind = "unique"
        elif expression:
            kind = "btree expr"
        else:
            kind = "btree"
        found.append(IndexInfo(name, kind, size, constraint))
    return found


def drop(index: IndexInfo) -> str:
    if index.constraint:
        return f"ALTER TABLE {_quote(table_name())} DROP CONSTRAINT {_quote(index.name)}"
    return f"DROP INDEX {_quote(index.name)}"


# The batch: new mails as enqueue() stores them --------------------------------------------


def new_mails(count: int) -> list:
    """count queued mails of a busy day: mail actions to customers, some composed, some
    from the system; each built into raw_message by mailbox.mime as enqueue() does."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from mailbox import mime
    from mailbox.models import AttachmentType, OutboxMessage, Status
    from smtpconfig.models import SmtpConfiguration

    configurations = list(SmtpConfiguration.objects.order_by("pk"))
    groups = list(Group.objects.filter(name__startswith="Laboratory ").order_by("pk"))
    creator = get_user_model().objects.get(username="bench-creator")
    sources = ["action"] * 7 + ["compose", "compose", "system", "test"]
    address_types = ["user", "customer", "customer", "system", "distribution", "address"]
    now = timezone.now()
    run_tag = os.getpid()
    mails = []
    for g in range(1, count + 1):
        customer = g % 700
        address = f"user{(g * 7919) % 25000}@customer{customer}.example.com"
        owner = f"Customer {(g * 31) % 3000}"
        label = f"Calibration reminder {g % 40}" if g % 11 < 7 else ""
        instruments = [
            (f"INV-{1_000_000 + g * 8 + k}", f"Multimeter {k % 4 + 1}0{g % 9}", f"SN{g:06d}{k}")
            for k in range(6 + g % 4)
        ]
        due = (now + dt.timedelta(days=30 + g % 20)).strftime("%Y-%m-%d")
        text_lines = [
            f"- {inv}: {model}, serial {serial}, due {due}" for inv, model, serial in instruments
        ]
        html_rows = "".join(
            f"<tr><td>{inv}</td><td>{model}</td><td>{serial}</td><td>{due}</td></tr>"
            for inv, model, serial in instruments
        )
        attachments = (0, 0, 0, 1, 1, 1, 1, 2, 2, 3)[g % 10]
        mail = OutboxMessage(
            source=sources[g % 11],
            source_label=label,
            recipient=address,
            recipient_owner=owner,
            address_type=address_types[g % 6],
            attachment_count=attachments,
            export_type=("", "excel", "pdf_html", "csv", "pdf_html")[g % 5],
            parameters={
                "filter": ("due", "overdue", "due_overdue", "all")[g % 4],
                "days": g % 90,
                "report": f"Inventory {g % 12}",
            },
            # Links, so that every mail is built into raw_message (mails with files
            # are built when they are sent and store nothing there).
            attachment_type=AttachmentType.LINK if attachments else AttachmentType.FILE,
            exported_attachments=min(attachments, (0, 0, 0, 1, 1, 1, 1, 1, 2, 2)[g % 10]),
            status=Status.QUEUED,
            from_email="calibration@calserver.example.com",
            from_name="calServer",
            to=[address],
            subject=f"Calibration due: instrument {instruments[0][0]} ({len(instruments)} items)",
            body_text=(
                f"Hello {owner},\n\nthe following instruments are due for calibration:\n\n"
                + "\n".join(text_lines)
                + "\n\nPlease book the calibration in calServer.\n\nKind regards\n"
                "your calibration team\n"
            ),
            body_html=(
                f"<p>Hello {owner},</p><p>the following instruments are due for "
                "calibration:</p><table><tr><th>Instrument</th><th>Model</th>"
                f"<th>Serial</th><th>Due</th></tr>{html_rows}</table>"
                "<p>Please book the calibration in calServer.</p>"
                "<p>Kind regards<br>your calibration team</p>"
            ),
            message_id=f"<{g}.{run_tag}{MESSAGE_ID_DOMAIN}",
            smtp_configuration=configurations[1 if g % 5 == 0 else 0],
            next_attempt_at=now,
            owner_group=groups[g % len(groups)] if g % (len(groups) + 1) else None,
            created_by=creator if g % 11 in (7, 8) else None,
        )
        mail.raw_message = mime.prebuilt(mail)
        mails.append(mail)
    return mails


@dataclass(frozen=True)
class Insert:
    """One INSERT of CHUNK rows: its SQL with placeholders and its values, and the text
    Django sends (it binds the values on the client)."""

    sql: str
    params: tuple
    text: str

    def with_other_ids(self) -> Insert:
        """The same rows under other Message-IDs (they are unique)."""

        def other(value):
            if isinstance(value, str) and value.endswith(MESSAGE_ID_DOMAIN):
                return value.replace(MESSAGE_ID_DOMAIN, "z" + MESSAGE_ID_DOMAIN)
            return value

        return Insert(
            self.sql,
            tuple(other(value) for value in self.params),
            self.text.replace(MESSAGE_ID_DOMAIN, "z" + MESSAGE_ID_DOMAIN),
        )


def insert_statements(mails: list) -> list[Insert]:
    """The INSERTs bulk_create(batch_size=500) sends, prepared once, so that the timing
    holds only what reaches the server."""
    from django.db import connection
    from django.db.models.sql import InsertQuery

    from mailbox.models import OutboxMessage

    meta = OutboxMessage._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    statements = []
    with connection.cursor() as cursor:
        for start in range(0, len(mails), CHUNK):
            query = InsertQuery(OutboxMessage)
            query.insert_values(fields, mails[start : start + CHUNK], raw=False)
            compiler = query.get_compiler(connection=connection)
            compiler.returning_fields = [meta.pk]
            [(sql, params)] = compiler.as_sql()
            statements.append(Insert(sql, tuple(params), cursor.cursor.mogrify(sql, params)))
    return statements


# Measuring ---------------------------------------------------------------------------------

CLOCK_READABLE = True


class BackendClock:
    """CPU seconds of the PostgreSQL backend serving this connection, from /proc (Linux,
    the server on this machine): far less disturbed than the wall clock by whatever else
    the machine runs (not undisturbed: caches are shared). NaN where it cannot be read."""

    def __init__(self, pid: int):
        path = Path(f"/proc/{pid}")
        try:
            ours = path.joinpath("comm").read_text().strip() == "postgres"
        except OSError:
            ours = False
        self.path = path / "schedstat" if ours else None

    def __call__(self) -> float:
        if self.path is None:
            return math.nan
        try:
            return int(self.path.read_text().split()[0]) / 1e9
        except (OSError, ValueError):
            return math.nan


@dataclass
class Phase:
    """Wall-clock seconds, the backend's CPU seconds and WAL bytes of some work."""

    wall: float = 0.0
    cpu: float = 0.0
    wal: float = 0.0

    def __add__(self, other: Phase) -> Phase:
        return Phase(self.wall + other.wall, self.cpu + other.cpu, self.wal + other.wal)

    def scaled(self, factor: float) -> Phase:
        return Phase(self.wall * factor, self.cpu * factor, self.wal * factor)


@contextlib.contextmanager
def phase(clock: BackendClock) -> Iterator[Phase]:
    """Times the block; the Phase yielded gets wall and cpu at the end (wal is the caller's)."""
    global CLOCK_READABLE
    result = Phase()
    cpu, wall = clock(), time.perf_counter()
    yield result
    result.wall = time.perf_counter() - wall
    result.cpu = clock() - cpu
    if math.isnan(result.cpu):
        CLOCK_READABLE = False
        result.cpu = result.wall


def _wal(rows) -> float:
    """WAL bytes from the rows of an EXPLAIN (ANALYZE, WAL, FORMAT JSON)."""
    plan = rows[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"].get("WAL Bytes", 0))


def _claim_sql(count: int) -> str:
    # What QuerySet.update() sends for the engine's claim of count rows.
    placeholders = ", ".join(["%s"] * count)
    return (
        f'UPDATE {_quote(table_name())} SET "status" = %s, "lease_expires_at" = %s, '  # noqa: S608
        f'"claimed_by" = %s WHERE "id" IN ({placeholders})'
    )


def _outcome_sql() -> str:
    # The engine's outcome UPDATE (mailbox.delivery), without the attempt it inserts.
    return (
        f'UPDATE {_quote(table_name())} SET "status" = %s, "error_message" = %s, '  # noqa: S608
        '"attempt_count" = %s, "lease_expires_at" = %s, "claimed_by" = %s, '
        '"next_attempt_at" = %s, "sent_at" = %s WHERE "id" = %s AND "status" = %s '
        'AND "claimed_by" = %s'
    )


def _outcome_params(pk: int) -> list:
    from django.utils import timezone

    # status, error_message, attempt_count, lease, claimed_by, next attempt, sent_at;
    # then the WHERE: id, status, claimed_by.
    return ["sent", "", 1, None, "", None, timezone.now(), pk, "sending", WORKER]


def _flush(cursor, names: list[str] | None, *, exclude: bool = False) -> float:
    """Flush the GIN pending lists of the named indexes (all but them with exclude, all
    with None); returns the WAL bytes."""
    condition = ""
    params: list = [table_name()]
    if names is not None:
        condition = f" AND {'NOT ' if exclude else ''}(c.relname = ANY(%s))"
        params.append(list(names))
    sql = (
        "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i "  # noqa: S608
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
        f"WHERE a.amname = 'gin' AND i.indrelid = %s::regclass{condition}"
    )
    cursor.execute(EXPLAIN + sql, params)
    return _wal(cursor.fetchall())


def _vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # What the rolled-back work left (dead rows, index entries) goes, untimed.
        cursor.execute(f"VACUUM (INDEX_CLEANUP ON) {_quote(table_name())}")


# Whole runs: the totals ------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    label: str
    setup: tuple[str, ...] = ()


@dataclass
class Run:
    """A whole run, for the whole batch."""

    insert: Phase
    insert_flush: Phase
    claim: Phase
    outcome: Phase  # the timed UPDATEs scaled to the batch; WAL from the sampled ones
    status_flush: Phase
    outcome_latencies: list[float] = field(default_factory=list)

    @property
    def insert_total(self) -> Phase:
        return self.insert + self.insert_flush

    @property
    def status_total(self) -> Phase:
        return self.claim + self.outcome + self.status_flush


def measure_whole(variant: Variant, statements: list[Insert], batch: int) -> Run:
    """The batch inserted, claimed and sent under the variant, in a transaction that is
    rolled back; the outcome UPDATEs one by one, as the engine sends them."""
    import psycopg
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    table = _quote(table_name())
    claim_size = max(1, settings.CALMAIL_DELIVERY_BATCH_SIZE)
    with transaction.atomic():
        clock = BackendClock(connection.connection.info.backend_pid)
        with connection.cursor() as cursor:
            for statement in variant.setup:
                cursor.execute(statement)
            # The foreign keys checked at each INSERT, not at a commit that never comes.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f'SELECT coalesce(max("id"), 0) FROM {table}')  # noqa: S608
            [(last_id,)] = cursor.fetchall()

            with phase(clock) as insert:
                for statement in statements:
                    cursor.execute(EXPLAIN + statement.text)
                    insert.wal += _wal(cursor.fetchall())
            with phase(clock) as insert_flush:
                insert_flush.wal = _flush(cursor, None)

            cursor.execute(f'SELECT "id" FROM {table} WHERE "id" > %s ORDER BY "id"', [last_id])  # noqa: S608
            ids = [row[0] for row in cursor.fetchall()]
            if len(ids) != batch:
                raise SystemExit(f"inserted {len(ids)} rows, expected {batch}")

            lease = timezone.now() + dt.timedelta(minutes=5)
            with phase(clock) as claim:
                for start in range(0, batch, claim_size):
                    chunk = ids[start : start + claim_size]
                    cursor.execute(
                        EXPLAIN + _claim_sql(len(chunk)), ["sending", lease, WORKER, *chunk]
                    )
                    claim.wal += _wal(cursor.fetchall())

        # One server-side prepared UPDATE per mail; every tenth under EXPLAIN (untimed)
        # for the WAL bytes.
        sampled = ids[OUTCOME_WAL_EVERY - 1 :: OUTCOME_WAL_EVERY]
        skipped = set(sampled)
        timed = [pk for pk in ids if pk not in skipped]
        latencies = []
        sampled_wal = 0.0
        with psycopg.Cursor(connection.connection) as raw:
            with phase(clock) as outcome:
                for pk in timed:
                    started = time.perf_counter()
                    raw.execute(_outcome_sql(), _outcome_params(pk), prepare=True)
                    latencies.append(time.perf_counter() - started)
                    if raw.rowcount != 1:
                        raise SystemExit(f"outcome UPDATE of {pk} changed {raw.rowcount} rows")
            for pk in sampled:
                raw.execute(EXPLAIN + _outcome_sql(), _outcome_params(pk))
                sampled_wal += _wal(raw.fetchall())
        outcome = outcome.scaled(batch / max(1, len(timed)))
        outcome.wal = sampled_wal * batch / max(1, len(sampled))
        with connection.cursor() as cursor, phase(clock) as status_flush:
            status_flush.wal = _flush(cursor, None)
        transaction.set_rollback(True)
    _vacuum()
    return Run(insert, insert_flush, claim, outcome, status_flush, latencies)


# Paired runs: what one index costs ---------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    label: str
    kind: str
    setup: tuple[str, ...]  # run in B's savepoint: the index dropped, or its setting changed
    own_lists: tuple[str, ...]  # GIN whose pending lists then hold A's entries only


@dataclass
class PairRun:
    """Per phase: A - B per mail of each pair (cpu seconds, WAL bytes), and the timed flush
    of the pair's own pending lists per mail."""

    cpu: dict[str, list[float]] = field(default_factory=dict)
    wal: dict[str, list[float]] = field(default_factory=dict)
    flush_cpu: dict[str, float] = field(default_factory=dict)
    flush_wal: dict[str, float] = field(default_factory=dict)

    def cost(self, name: str, *, wal: bool = False) -> float:
        """Per mail: CPU seconds or WAL bytes that the pair's index costs in phase name."""
        differences = (self.wal if wal else self.cpu)[name]
        own = (self.flush_wal if wal else self.flush_cpu).get(name, 0.0)
        return _trimmed_mean(differences) + own


def _trimmed_mean(values: list[float], cut: float = 0.1) -> float:
    """Mean without the highest and lowest tenth: robust against a pair that another
    process on the machine disturbed, and still the mean of what remains."""
    if not values:
        return 0.0
    ordered = sorted(values)
    drop = int(len(ordered) * cut)
    kept = ordered[drop : len(ordered) - drop] or ordered
    return sum(kept) / len(kept)


PHASES = ("insert", "claim", "outcome")


def measure_pair(
    pair: Pair, a_statements: list[Insert], b_statements: list[Insert], batch: int
) -> PairRun:
    import psycopg
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    table = _quote(table_name())
    claim_size = max(1, settings.CALMAIL_DELIVERY_BATCH_SIZE)
    result = PairRun()
    with transaction.atomic():
        db = connection.connection
        clock = BackendClock(db.info.backend_pid)
        cursor = connection.cursor()
        raw = psycopg.Cursor(db)
        # No pending list cleanup in the middle of a chunk: lists are flushed between pairs.
        cursor.execute("SET LOCAL gin_pending_list_limit = '1GB'")
        # The foreign keys checked at each INSERT, not at a commit that never comes (and no
        # checks left pending, which would forbid the DDL of the next pair).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        outcome_sql = _outcome_sql()
        own = list(pair.own_lists)

        def warm() -> None:
            # Untimed: the relation cache rebuilt after the DDL, the prepared plan renewed.
            cursor.execute(f'UPDATE {table} SET "status" = "status" WHERE "id" = -1')  # noqa: S608
            raw.execute(outcome_sql, _outcome_params(-1), prepare=True)

        def side(b: bool, work: Callable, unit, number: int, keep: bool) -> Phase:
            """One side of a pair; B's, and A's unless keep, in a savepoint rolled back."""
            if b or not keep:
                cursor.execute("SAVEPOINT bench_side")
            if b:
                for statement in pair.setup:
                    cursor.execute(statement)
            warm()
            with phase(clock) as measured:
                measured.wal = work(unit, b, number)  # None where the work cannot tell
            if b or not keep:
                cursor.execute("ROLLBACK TO SAVEPOINT bench_side")
                cursor.execute("RELEASE SAVEPOINT bench_side")
            return measured

        def pairs(name: str, units: list, work, *, keep=True, timed=lambda number: True):
            """A and B on each unit, by turns B first and A first. When A keeps its work,
            B after A works on the next unit (A has changed this one), so both always find
            rows in the same state. work(unit, b, number) returns the WAL bytes, or None
            where it cannot tell; the CPU time of pairs that are not timed(number) is not
            used. Every other pending list is flushed after each pair (untimed), the pair's
            own at the end (timed: A's entries only)."""
            cpu, wal, a_rows = [], [], 0
            for number, unit in enumerate(units):
                if number % 2 == 0:
                    b_side = side(True, work, unit, number, keep)
                    a_side = side(False, work, unit, number, keep)
                else:
                    a_side = side(False, work, unit, number, keep)
                    b_unit = units[number + 1] if keep and number + 1 < len(units) else unit
                    if keep and number + 1 == len(units):
                        a_rows += len(unit)
                        break  # no rows left in the state A found
                    b_side = side(True, work, b_unit, number, keep)
                rows = CHUNK if isinstance(unit, tuple) else len(unit)
                a_rows += rows
                if timed(number):
                    cpu.append((a_side.cpu - b_side.cpu) / rows)
                if a_side.wal is not None and b_side.wal is not None:
                    wal.append((a_side.wal - b_side.wal) / rows)
                _flush(cursor, own, exclude=True)
            result.cpu[name], result.wal[name] = cpu, wal
            if own:
                with phase(clock) as flushed:
                    flushed.wal = _flush(cursor, own)
                result.flush_cpu[name] = flushed.cpu / a_rows
                result.flush_wal[name] = flushed.wal / a_rows

        cursor.execute(f'SELECT coalesce(max("id"), 0) FROM {table}')  # noqa: S608
        [(last_id,)] = cursor.fetchall()

        def insert(statements: tuple[Insert, Insert], b: bool, number: int) -> float:
            # Bound on the server: parsing 3 MB of SQL text (the client-bound INSERT) would
            # make the pairs far noisier, for work that is the same on both sides.
            statement = statements[1 if b else 0]
            raw.execute(EXPLAIN + statement.sql, statement.params)
            return _wal(raw.fetchall())

        # Inserts: both sides rolled back, so there can be more pairs than the batch has
        # chunks; then the batch for real (untimed), for the status changes.
        units = list(zip(a_statements, b_statements, strict=True)) * INSERT_PASSES
        pairs("insert", units, insert, keep=False)
        for statement in a_statements:
            cursor.execute(statement.text)
        _flush(cursor, None)
        cursor.execute(f'SELECT "id" FROM {table} WHERE "id" > %s ORDER BY "id"', [last_id])  # noqa: S608
        ids = [row[0] for row in cursor.fetchall()]
        if len(ids) != batch:
            raise SystemExit(f"{pair.label}: {len(ids)} rows inserted, expected {batch}")
        chunks = [ids[start : start + claim_size] for start in range(0, batch, claim_size)]

        lease = timezone.now() + dt.timedelta(minutes=5)

        def claim(chunk: list[int], b: bool, number: int) -> float:
            cursor.execute(EXPLAIN + _claim_sql(len(chunk)), ["sending", lease, WORKER, *chunk])
            return _wal(cursor.fetchall())

        pairs("claim", chunks, claim)

        def wal_pair(number: int) -> bool:
            return number % OUTCOME_WAL_EVERY in (OUTCOME_WAL_EVERY - 2, OUTCOME_WAL_EVERY - 1)

        def outcome(chunk: list[int], b: bool, number: int) -> float | None:
            if wal_pair(number):
                # A fifth of the pairs (one B-first, one A-first in ten) under EXPLAIN, for
                # the WAL bytes; their time is not used.
                wal = 0.0
                for pk in chunk:
                    raw.execute(EXPLAIN + outcome_sql, _outcome_params(pk))
                    wal += _wal(raw.fetchall())
                return wal
            # Pipelined: the backend does what it does for the engine's UPDATEs, with
            # fewer round trips.
            with db.pipeline():
                for pk in chunk:
                    raw.execute(outcome_sql, _outcome_params(pk), prepare=True)
            return None

        pairs("outcome", chunks, outcome, timed=lambda number: not wal_pair(number))
        cursor.execute(
            f'SELECT count(*) FROM {table} WHERE "id" > %s AND "status" = %s',  # noqa: S608
            [last_id, "sent"],
        )
        [(sent,)] = cursor.fetchall()
        if sent != batch:
            raise SystemExit(f"{pair.label}: {sent} rows sent, expected {batch}")
        transaction.set_rollback(True)
        raw.close()
        cursor.close()
    _vacuum()
    return result


# The variants -----------------------------------------------------------------------------


def pair_variants(found: list[IndexInfo]) -> tuple[list[Pair], dict[str, Pair]]:
    """One pair per index but the primary key (the schema's and the two extra ones), and
    the groups."""
    schema = [index for index in found if index.kind != "pk" and index.name not in EXTRA_INDEXES]
    gin = [index for index in schema if index.kind == "gin"]
    sort = [index for index in schema if index.name.startswith("outbox_sort_")]

    def lists(indexes: list[IndexInfo]) -> tuple[str, ...]:
        return tuple(index.name for index in indexes if index.kind == "gin")

    single = [
        Pair(index.name, index.kind, (drop(index),), lists([index]))
        for index in found
        if index.kind != "pk"
    ]
    groups = {
        "gin": Pair("the six trigram GIN", "", tuple(drop(i) for i in gin), lists(gin)),
        "sort": Pair(f"the {len(sort)} sort indexes", "", tuple(drop(i) for i in sort), ()),
        "all": Pair(
            f"all {len(schema)} secondary indexes",
            "",
            tuple(drop(i) for i in schema),
            lists(schema),
        ),
        "fastupdate": Pair(
            "the six GIN: fastupdate on minus off",
            "",
            tuple(f"ALTER INDEX {_quote(i.name)} SET (fastupdate = off)" for i in gin),
            lists(gin),
        ),
    }
    return single, groups


def whole_variants(found: list[IndexInfo]) -> dict[str, Variant]:
    schema = [index for index in found if index.kind != "pk" and index.name not in EXTRA_INDEXES]
    gin = [index for index in schema if index.kind == "gin"]
    extras = [index for index in found if index.name in EXTRA_INDEXES]
    no_extras = tuple(drop(index) for index in extras)
    return {
        "all": Variant("all indexes", no_extras),
        "none": Variant("primary key only", (*no_extras, *(drop(i) for i in schema))),
        "fastupdate off": Variant(
            "GIN fastupdate=off",
            (*no_extras, *(f"ALTER INDEX {_quote(i.name)} SET (fastupdate = off)" for i in gin)),
        ),
        "limit 64kB": Variant(
            "gin_pending_list_limit 64kB", (*no_extras, "SET LOCAL gin_pending_list_limit = '64kB'")
        ),
        "limit 32MB": Variant(
            "gin_pending_list_limit 32MB", (*no_extras, "SET LOCAL gin_pending_list_limit = '32MB'")
        ),
        "search": Variant(
            "one search GIN instead of the six",
            tuple(drop(i) for i in [*gin, *extras] if i.name != SEARCH_INDEX),
        ),
    }


# Reading: the list's text filters on the six indexes vs. the one ---------------------------

FILTER_VALUES = {
    '"recipient"': [("common", "@customer17."), ("rare", "user24999@customer")],
    '"subject"': [("common", "(3 items)"), ("rare", "INV-999999 ")],
    '"source_label"': [("common", "reminder 17"), ("rare", "no such action")],
    '"recipient_owner"': [("common", "Customer 17"), ("rare", "Customer 2999x")],
    '"error_message"': [("common", "Recipient address rejected"), ("rare", "user24999@")],
    '("parameters")::text': [("common", "overdue"), ("rare", "no such parameter")],
}


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def read_check(found: list[IndexInfo], repeat: int) -> list[tuple[str, float, float]]:
    """First page (51 rows, newest first, as the list asks) of each text filter: with the
    six trigram indexes, and with only the search index (the filter then also tests the
    search expression, which a row matching the column always matches)."""
    from django.db import connection, transaction

    table = _quote(table_name())
    gin = [index for index in found if index.kind == "gin" and index.name not in EXTRA_INDEXES]
    partial = [index for index in found if index.name == ERROR_PARTIAL_INDEX]
    results = []
    for column, cases in FILTER_VALUES.items():
        for label, value in cases:
            timings = []
            for setup, extra in (
                ([f"DROP INDEX {_quote(name)}" for name in EXTRA_INDEXES], ""),
                (
                    [drop(index) for index in [*gin, *partial]],
                    f" AND {SEARCH_EXPRESSION} LIKE UPPER(%s)",
                ),
            ):
                sql = (
                    f"SELECT * FROM {table} WHERE UPPER({column}) LIKE UPPER(%s){extra} "  # noqa: S608
                    'ORDER BY "created_at" DESC, "id" DESC LIMIT 51'
                )
                params = [_like(value)] * (2 if extra else 1)
                runs = []
                with transaction.atomic(), connection.cursor() as cursor:
                    for statement in setup:
                        cursor.execute(statement)
                    for run in range(repeat + 1):
                        started = time.perf_counter()
                        cursor.execute(sql, params)
                        cursor.fetchall()
                        if run:
                            runs.append((time.perf_counter() - started) * 1000)
                    transaction.set_rollback(True)
                timings.append(statistics.median(runs))
            name = column.strip('()"').split('"')[0]
            results.append((f"{name}: {label}", timings[0], timings[1]))
    return results


# Running and printing ---------------------------------------------------------------------


def _size(size: float) -> str:
    return f"{size / 1048576:.1f} MB" if size >= 1048576 else f"{size / 1024:.0f} kB"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def run(rows: int, batch: int, repeat: int, directory: Path) -> None:
    with throwaway_postgres(os.environ.get("DATABASE_URL", "")) as database_url:
        set_environment(
            database_url=database_url,
            broker_url="memory://",
            var_dir=directory / "var",
            settings_module="calmail.settings_test",
        )
        setup_django()
        # Imported here: Django must not read its settings before set_environment().
        from django.core.management import call_command
        from django.db import connection

        from bench.outbox_list import fill

        began = time.monotonic()
        call_command("migrate", verbosity=0)
        table = _quote(table_name())
        with connection.cursor() as cursor:
            cursor.execute("SELECT version(), current_setting('shared_buffers')")
            version, shared_buffers = cursor.fetchone()
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
            if cursor.fetchone() is None:
                raise SystemExit("pg_trgm is missing: the outbox has no trigram indexes.")
            # The extra indexes before the fill, so that they grow row by row like the
            # six (an index built in one go over existing rows is far more compact).
            cursor.execute(
                f"CREATE INDEX {_quote(SEARCH_INDEX)} ON {table} "
                f"USING gin (({SEARCH_EXPRESSION}) gin_trgm_ops)"
            )
            cursor.execute(
                f"CREATE INDEX {_quote(ERROR_PARTIAL_INDEX)} ON {table} "
                'USING gin ((UPPER("error_message")) gin_trgm_ops) WHERE "error_message" <> \'\''
            )
            # Only this script's VACUUMs: none in one measurement and not the next.
            cursor.execute(
                f"ALTER TABLE {table} SET (autovacuum_enabled = off, "
                "toast.autovacuum_enabled = off)"
            )
        say(f"{version.split(' on ')[0]}, shared_buffers {shared_buffers}")
        fill(rows)

        started = time.monotonic()
        mails = new_mails(batch)
        a_statements = insert_statements(mails)
        # B's rows in the paired runs: the same mails under other Message-IDs (unique).
        b_statements = [statement.with_other_ids() for statement in a_statements]
        sizes = sorted(len(bytes(mail.raw_message)) for mail in mails)
        say(
            f"batch of {batch} new mails built in {time.monotonic() - started:.1f} s; "
            f"raw_message median {sizes[len(sizes) // 2]} B"
        )
        found = indexes()
        single, groups = pair_variants(found)
        whole = whole_variants(found)
        work: list[tuple[str, object]] = [("pair", pair) for pair in [*single, *groups.values()]]
        work += [("whole", variant) for variant in whole.values()]
        work.append(("whole", whole["all"]))  # the baseline twice per round
        say(
            f"{len(found) - 1 - len(EXTRA_INDEXES)} secondary indexes (+ {len(EXTRA_INDEXES)} "
            f"extra); {len(work)} runs per round, {repeat} rounds; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        measure_whole(whole["all"], a_statements, batch)  # warm-up: caches, prepared statement
        pair_runs: dict[str, list[PairRun]] = {}
        whole_runs: dict[str, list[Run]] = {}
        for round_number in range(repeat):
            started = time.monotonic()
            order = list(work)
            random.Random(round_number).shuffle(order)  # noqa: S311 - an order, no secret
            for mode, variant in order:
                if mode == "pair":
                    pair_runs.setdefault(variant.label, []).append(
                        measure_pair(variant, a_statements, b_statements, batch)
                    )
                else:
                    whole_runs.setdefault(variant.label, []).append(
                        measure_whole(variant, a_statements, batch)
                    )
            say(
                f"round {round_number + 1}/{repeat}: {time.monotonic() - started:.0f} s, "
                f"load average {os.getloadavg()[0]:.1f}"
            )
        reads = read_check(found, repeat)
        report(found, single, groups, whole, pair_runs, whole_runs, batch, reads, rows)
        say(f"{time.monotonic() - began:.0f} s in all, migrations and fill included")


def report(found, single, groups, whole, pair_runs, whole_runs, batch, reads, rows) -> None:
    sizes = {index.name: index.size for index in found}

    def pair_cost(label: str) -> tuple[list[float], float, float]:
        """Per mail: insert, claim, outcome, status CPU µs, insert and status WAL bytes
        (medians of the rounds); and the standard errors of insert and of status (the
        spread of the pairs of all rounds)."""
        runs = pair_runs[label]
        per_round = []
        for run_ in runs:
            insert = run_.cost("insert") * 1e6
            claim = run_.cost("claim") * 1e6
            outcome = run_.cost("outcome") * 1e6
            per_round.append(
                [
                    insert,
                    claim,
                    outcome,
                    claim + outcome,
                    run_.cost("insert", wal=True),
                    run_.cost("claim", wal=True) + run_.cost("outcome", wal=True),
                ]
            )
        values = [_median([row[n] for row in per_round]) for n in range(6)]

        def error(name: str) -> float:
            pooled = [difference for run_ in runs for difference in run_.cpu[name]]
            if len(pooled) < 2:
                return math.nan
            return statistics.stdev(pooled) / math.sqrt(len(pooled)) * 1e6

        status_error = math.hypot(error("claim"), error("outcome"))
        return values, error("insert"), status_error

    def line(label: str, kind: str, size: str, values: list[float], errors=None) -> str:
        spread = f"{errors[0]:>5.1f} {errors[1]:>5.1f}" if errors else f"{'':>5} {'':>5}"
        return (
            f"{label:<40} {kind:<10} {size:>8} "
            + " ".join(f"{value:>7.1f}" for value in values[:4])
            + f" {spread} "
            + " ".join(f"{value:>7.0f}" for value in values[4:])
        )

    say("")
    say(
        f"What each index costs per mail at {rows} rows (paired runs, batch {batch}, median "
        f"of {len(next(iter(pair_runs.values())))} rounds):"
    )
    say(
        "CPU µs of the PostgreSQL backend; status = claim + outcome UPDATE; GIN include "
        "their pending list flush; ± ins, ± st: one standard error of insert and status."
    )
    header = (
        f"{'index':<40} {'kind':<10} {'size':>8} {'insert':>7} {'claim':>7} {'outcome':>7} "
        f"{'status':>7} {'± ins':>5} {'± st':>5} {'insert':>7} {'status':>7}"
    )
    say(header)
    say(
        f"{'':<40} {'':<10} {'':>8} {'cpu µs':>7} {'cpu µs':>7} {'cpu µs':>7} {'cpu µs':>7} "
        f"{'µs':>5} {'µs':>5} {'WAL B':>7} {'WAL B':>7}"
    )
    say("-" * len(header))
    rows_out = []
    for pair in single:
        if pair.label in EXTRA_INDEXES:
            continue
        values, *errors = pair_cost(pair.label)
        rows_out.append((pair.label, pair.kind, sizes[pair.label], values, errors))
    rows_out.sort(key=lambda row: -(row[3][0] + row[3][3]))
    for name, kind, size, values, errors in rows_out:
        say(line(name, kind, _size(size), values, errors))
    say("-" * len(header))
    summed = [sum(row[3][n] for row in rows_out) for n in range(6)]
    say(line("sum of the rows above", "", _size(sum(row[2] for row in rows_out)), summed))
    for key in ("all", "gin", "sort"):
        pair = groups[key]
        values, *errors = pair_cost(pair.label)
        say(line(pair.label + " together", "", "", values, errors))
    say(
        "(groups can save more than their indexes' single figures add up to, the outcome "
        "UPDATE most: a single figure is the cost of one index beside all the others)"
    )
    say("alternatives (measured beside the schema's indexes):")
    for name in EXTRA_INDEXES:
        kind = next(index.kind for index in found if index.name == name)
        values, *errors = pair_cost(name)
        say(line(name, kind, _size(sizes[name]), values, errors))
    values, *errors = pair_cost(groups["fastupdate"].label)
    say(line(groups["fastupdate"].label, "", "", values, errors))

    say("")
    say(
        "Whole runs per mail (median of the rounds; WAL: the least): CPU µs of the backend, "
        "wall µs as the client waits, WAL bytes"
    )
    metrics: list[tuple[str, Callable[[Run], float], bool]] = [
        ("insert cpu", lambda r: r.insert_total.cpu, False),
        ("claim cpu", lambda r: r.claim.cpu, False),
        ("outcome cpu", lambda r: r.outcome.cpu, False),
        ("flush cpu", lambda r: r.insert_flush.cpu + r.status_flush.cpu, False),
        ("status cpu", lambda r: r.status_total.cpu, False),
        ("insert wall", lambda r: r.insert_total.wall, False),
        ("status wall", lambda r: r.status_total.wall, False),
        ("insert WAL", lambda r: r.insert_total.wal, True),
        ("status WAL", lambda r: r.status_total.wal, True),
    ]

    def whole_value(label: str, read: Callable[[Run], float], least: bool, wal: bool) -> float:
        values = [read(run_) for run_ in whole_runs[label]]
        value = min(values) if least else _median(values)
        return value / batch * (1 if wal else 1e6)

    names = [name.split()[0] for name, _read, _least in metrics]
    units = [name.split()[1] for name, _read, _least in metrics]
    say(f"{'variant':<36} " + " ".join(f"{name:>7}" for name in names) + "  outcome UPDATE ms")
    say(f"{'':<36} " + " ".join(f"{unit:>7}" for unit in units) + "  p50 / p99 / max")
    for key in ("all", "none", "fastupdate off", "limit 64kB", "limit 32MB", "search"):
        label = whole[key].label
        values = [
            whole_value(label, read, least, name.endswith("WAL")) for name, read, least in metrics
        ]
        latencies = sorted(
            latency for run_ in whole_runs[label] for latency in run_.outcome_latencies
        )
        percentiles = (
            f"{latencies[len(latencies) // 2] * 1000:.2f} / "
            f"{latencies[int(len(latencies) * 0.99)] * 1000:.2f} / {latencies[-1] * 1000:.1f}"
        )
        say(f"{label:<36} " + " ".join(f"{value:>7.0f}" for value in values) + "  " + percentiles)
    for name, read, _least in metrics[:7]:
        if name in ("insert cpu", "status cpu", "insert wall", "status wall"):
            values = [read(run_) / batch * 1e6 for run_ in whole_runs[whole["all"].label]]
            say(
                f"noise: {name} of the {len(values)} runs with all indexes from "
                f"{min(values):.0f} to {max(values):.0f} µs per mail"
            )
    if not CLOCK_READABLE:
        say("note: the server's CPU time is not readable here; 'cpu' figures are wall time")
    gin_size = sum(
        index.size for index in found if index.kind == "gin" and index.name not in EXTRA_INDEXES
    )
    say(
        f"size: the six trigram GIN {_size(gin_size)}, the one search GIN "
        f"{_size(sizes[SEARCH_INDEX])}, the table with all indexes "
        f"{_size(sum(sizes.values()) - sizes[SEARCH_INDEX] - sizes[ERROR_PARTIAL_INDEX])} of index"
    )

    say("")
    say(f"The list's text filters at {rows} rows: first page (51 rows, newest first), SQL ms:")
    say(f"{'filter':<34} {'six indexes':>11} {'one search index':>16}")
    for label, six, one in reads:
        say(f"{label:<34} {six:>11.1f} {one:>16.1f}")

    base = whole["all"].label
    insert_all = whole_value(base, metrics[0][1], False, False)
    status_all = whole_value(base, metrics[4][1], False, False)
    indexes_cost, *_errors = pair_cost(groups["all"].label)
    gin_cost, *_errors = pair_cost(groups["gin"].label)
    say("")
    say(
        f"outbox_writes: insert {insert_all:.0f} µs/mail, status change {status_all:.0f} "
        f"µs/mail; indexes {indexes_cost[0]:.0f} and {indexes_cost[3]:.0f} of it; trigram GIN "
        f"{(gin_cost[0] + gin_cost[3]) / (insert_all + status_all) * 100:.0f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="outbox rows before (200000)")
    parser.add_argument("--batch", type=int, default=5000, help="mails per run (5000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of all variants (3)")
    arguments = parser.parse_args()
    if arguments.rows < 1 or arguments.batch < 2 or arguments.repeat < 1:
        parser.error("--rows and --repeat must be at least 1, --batch at least 2")
    if not is_postgres(os.environ.get("DATABASE_URL")):
        say(
            "bench/outbox_writes.py skipped: it needs PostgreSQL, run it with "
            "DATABASE_URL=postgres://user@host:5432/dbname (a throwaway database is created "
            "next to dbname and dropped at the end)."
        )
        return
    directory = Path(tempfile.mkdtemp(prefix="calmail-bench-"))
    try:
        run(arguments.rows, arguments.batch, arguments.repeat, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
