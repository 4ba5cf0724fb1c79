"""The delivery engine: claim due mail of one SMTP configuration and hand it to the server.

The outbox row is the truth (docs/design.md, "Data flow" and 5.6.2). A run of ``deliver_due``:

1. takes one of the configuration's connection slots (``max_connections`` across all
   workers, see mailbox.ratelimit); without a free slot it stops at once, because the
   workers holding the slots drain the outbox anyway;
2. claims a batch of due rows (queued or deferred, ``next_attempt_at <= now``) in one
   short transaction: status "sending", a lease and the worker's id. PostgreSQL claims
   with ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite, which has no SKIP LOCKED, takes its
   database-wide write lock for the transaction (IMMEDIATE), so one claim runs at a time
   and a conditional UPDATE re-checks every row;
3. sends the batch over one reused connection (reopened after
   ``max_messages_per_connection`` and after a dropped connection) and commits each
   mail's outcome with its DeliveryAttempt right after the server's reply, so a killed
   worker can send at most the one mail each of its sessions had in flight twice (with
   the same Message-ID). A run holds several sessions at once, in threads (see _Crew).
   A mail goes out as the bytes enqueue() built (mailbox/mime.py), through a mailer
   session of smtpconfig.transport (SMTP, commands pipelined where the server offers
   it, or sendmail);
4. repeats until nothing is due or a limit stops it (rate limit, ``max_messages``, the
   run's time budget), then frees the slot.

``sweep`` runs every minute on Celery beat: it takes back rows whose "sending" lease
expired (their worker died), queues scheduled mail whose time has come, and nudges one
delivery task per configuration with due mail.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, Min, Q, QuerySet
from django.db.models.options import Options
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from calmail.common.i18n import DeferredText
from mailbox import mime
from mailbox.dispatch import dispatch_delivery
from mailbox.models import (
    AttemptOutcome,
    DeliveryAttempt,
    OutboxAttachment,
    OutboxMessage,
    Status,
)
from mailbox.ratelimit import rate_allowance, slot_acquire, slot_available, slot_release, slot_renew
from mailbox.transitions import check_transition
from smtpconfig.models import SmtpConfiguration
from smtpconfig.transport import Failure, MailerSession, Sent, assess_failure, open_session

logger = logging.getLogger(__name__)

DUE_STATUSES = (Status.QUEUED, Status.DEFERRED)
# What the engine reads of a row to send it; the rest (list columns) stays in the database.
SEND_FIELDS = (
    "id",
    "status",
    "attempt_count",
    "from_email",
    "to",
    "cc",
    "bcc",
    "raw_message",
    "attachment_type",
    "attachment_count",
)
# What building a mail needs besides, read only for the few rows enqueue() did not build.
BUILD_FIELDS = (
    "from_name",
    "reply_to",
    "subject",
    "body_text",
    "body_html",
    "headers",
    "message_id",
)
# How long a session's claimed batch should take to send (see _drain).
CLAIM_SECONDS = 1.0
# Not for security: spreading retries so deferred mail does not come back in one burst.
_jitter = random.Random()  # noqa: S311


class StopReason(enum.StrEnum):
    DRAINED = "drained"
    MAX_MESSAGES = "max_messages"
    TIME_BUDGET = "time_budget"
    RATE_LIMITED = "rate_limited"
    NO_SLOT = "no_slot"
    CONNECTION_FAILED = "connection_failed"
    LEASE_LOST = "lease_lost"
    NO_CONFIGURATION = "no_configuration"
    # Another session of the same run asked every session to stop (time limit, error).
    STOPPED = "stopped"


# Runs that stopped for one of these may continue at once in a new task.
_CONTINUABLE = {StopReason.DRAINED, StopReason.MAX_MESSAGES, StopReason.TIME_BUDGET}


@dataclass
class DeliveryStats:
    """What a run of deliver_due did, and why it stopped."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    # Claimed, but given back unsent (the run was interrupted).
    released: int = 0
    connections: int = 0
    batches: int = 0
    stop_reason: str = ""
    # When a rate limit stopped the run: the moment the next mail may go.
    rate_limited_until: datetime | None = None
    # Due mail was left when the run ended.
    more_due: bool = False
    # SMTP sessions this run held at once at most (each with its slot), this process only.
    sessions: int = 0

    def add(self, other: DeliveryStats) -> None:
        """Count another session's work into this run's figures."""
        for name in ("claimed", "sent", "deferred", "failed", "released", "connections", "batches"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def attempted(self) -> int:
        return self.sent + self.deferred + self.failed

    @property
    def should_continue(self) -> bool:
        """Whether a new run should follow at once. Only after progress: a run that sent
        nothing (no slot, nothing claimable) must not keep nudging itself."""
        return self.more_due and self.attempted > 0 and self.stop_reason in _CONTINUABLE

    def as_dict(self) -> dict:
        values = asdict(self)
        values["stop_reason"] = str(self.stop_reason)
        if self.rate_limited_until is not None:
            values["rate_limited_until"] = self.rate_limited_until.isoformat()
        return values


@dataclass
class SweepStats:
    # "sending" rows of dead workers put back to queued.
    recovered: int = 0
    # Scheduled rows whose time came, now queued.
    scheduled: int = 0
    # Configurations a delivery task was dispatched for.
    dispatched: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


# Preparing the message -------------------------------------------------------------------


@dataclass(frozen=True)
class _Envelope:
    sender: str
    recipients: list[str]
    data: bytes


def _prepare(row: OutboxMessage, attachments: Sequence[OutboxAttachment]) -> _Envelope:
    """The bytes to send: built by enqueue() (mailbox/mime.py), or now for a mail that
    attaches files from storage (and for rows stored before enqueue() built mails)."""
    data = bytes(row.raw_message)
    if not data:
        data = mime.built(row, attachments)
    sender, recipients = mime.envelope(row)
    return _Envelope(sender=sender, recipients=recipients, data=data)


def _load_for_building(rows: Sequence[OutboxMessage]) -> dict[int, list[OutboxAttachment]]:
    """For the rows of a batch that are built now: their content fields (the claim read
    only the envelope) and their file attachments, in two queries for the whole batch.
    Returns the attachments by row."""
    unbuilt = {row.pk: row for row in rows if not row.raw_message}
    found: dict[int, list[OutboxAttachment]] = defaultdict(list)
    if not unbuilt:
        return found
    for values in OutboxMessage.objects.filter(pk__in=list(unbuilt)).values("pk", *BUILD_FIELDS):
        row = unbuilt[values.pop("pk")]
        for name, value in values.items():
            setattr(row, name, value)
    with_files = [pk for pk, row in unbuilt.items() if mime.attaches_files(row)]
    if with_files:
        attachments = OutboxAttachment.objects.filter(message_id__in=with_files).order_by("id")
        for attachment in attachments:
            found[attachment.message_id].append(attachment)
    return found


# The connection ---------------------------------------------------------------------------


class _Connection:
    """The run's mailer session: opened when first needed, reused for the following mails
    and batches, reopened once it is worn out (max_messages_per_connection) or broken."""

    def __init__(self, configuration: SmtpConfiguration, stats: DeliveryStats):
        self.configuration = configuration
        self.stats = stats
        self.session: MailerSession | None = None

    def ensure_open(self) -> None:
        if self.session is not None and self.session.worn_out:
            self.close()
        if self.session is None:
            self.session = open_session(self.configuration)
            if self.session.network:
                self.stats.connections += 1

    def send(self, envelope: _Envelope) -> Sent:
        """Send one mail; what the mail system said (redacted)."""
        if self.session is None:
            raise RuntimeError("send() before ensure_open()")
        return self.session.send_raw(envelope.sender, envelope.recipients, envelope.data)

    @property
    def broken(self) -> bool:
        return self.session is not None and self.session.broken

    def drop(self) -> None:
        """Forget a connection that is dead or in an unknown state, without talking to it."""
        if self.session is not None:
            self.session.hang_up()
        self.session = None

    def close(self) -> None:
        """Say goodbye properly (QUIT) to a connection that is still in order."""
        session, self.session = self.session, None
        if session is not None:
            # The mails are committed already; close() never raises.
            session.close()


# Classifying what happened ----------------------------------------------------------------


class _Kind(enum.Enum):
    SENT = "sent"
    # The server (or sendmail) answered with a temporary failure: retry this mail later.
    TEMPORARY = "temporary"
    # A permanent refusal: retrying cannot help.
    PERMANENT = "permanent"


@dataclass(frozen=True)
class _Result:
    kind: _Kind
    error: str = ""
    reply_code: int | None = None
    reply_text: str = ""
    # The error as msgid and parameters (error_text of the mail); None: error as it is.
    error_text: DeferredText | None = None


def _failed(failure: Failure) -> _Result:
    """A failed send of one mail whose connection still worked (or that sendmail refused)."""
    return _Result(
        kind=_Kind.PERMANENT if failure.permanent else _Kind.TEMPORARY,
        error=failure.error,
        error_text=failure.error_text,
        reply_code=failure.reply_code,
        reply_text=_reply_or_reason(failure),
    )


def _reply_or_reason(failure: Failure) -> str:
    """The server's reply; where none came (connection refused, timeout), why not, so the
    attempt says what happened instead of nothing."""
    return failure.reply_text or failure.error


def _backoff(attempts: int) -> timedelta | None:
    """The wait before the next try after ``attempts`` tries, or None when they are used up."""
    steps = settings.CALMAIL_RETRY_BACKOFF
    if attempts > len(steps):
        return None
    return timedelta(seconds=steps[attempts - 1] * _jitter.uniform(0.9, 1.1))


# Writing outcomes -------------------------------------------------------------------------


@dataclass
class _Run:
    configuration: SmtpConfiguration
    worker_id: str
    stats: DeliveryStats
    lease_seconds: int
    slot_id: int | None = None
    # Claimed rows not yet answered, by pk (with the status they had before the claim).
    pending: dict[int, OutboxMessage] = field(default_factory=dict)
    renew_at: float = 0.0
    lease_lost: bool = False
    # Set by the crew when every session of the run is to stop after its current mail.
    halt: threading.Event = field(default_factory=threading.Event)

    @property
    def halted(self) -> bool:
        return self.lease_lost or self.halt.is_set()

    def lease_until(self) -> datetime:
        return timezone.now() + timedelta(seconds=self.lease_seconds)

    def renew_if_due(self) -> None:
        """Extend the leases of our rows and slot long before they run out: a slow server
        must not make the sweeper hand our rows to another worker while we send them."""
        if time.monotonic() < self.renew_at:
            return
        until = self.lease_until()
        if self.pending:
            OutboxMessage.objects.filter(
                pk__in=list(self.pending), status=Status.SENDING, claimed_by=self.worker_id
            ).update(lease_expires_at=until)
        if self.slot_id is not None and not slot_renew(
            slot_id=self.slot_id, holder=self.worker_id, lease_until=until
        ):
            # Our slot expired and another worker took it: finish this mail, then stop,
            # so the configuration's connection limit holds again.
            self.lease_lost = True
        self.renew_at = time.monotonic() + self.lease_seconds / 3

    def record(
        self,
        row: OutboxMessage,
        result: _Result,
        *,
        started_at: datetime,
        duration_ms: int,
    ) -> None:
        """Commit one mail's outcome and its DeliveryAttempt together (one transaction)."""
        if connection.vendor == "postgresql":
            # One statement, and so its own transaction, in one round trip.
            self._write(row, result, started_at=started_at, duration_ms=duration_ms)
        else:
            with transaction.atomic():
                self._write(row, result, started_at=started_at, duration_ms=duration_ms)

    def _write(
        self, row: OutboxMessage, result: _Result, *, started_at: datetime, duration_ms: int
    ) -> None:
        now = timezone.now()
        attempts = row.attempt_count + 1
        error = result.error
        error_text = result.error_text
        fields: dict[str, object] = {
            "attempt_count": attempts,
            "lease_expires_at": None,
            "claimed_by": "",
            "next_attempt_at": None,
        }
        if result.kind is _Kind.SENT:
            status = Status.SENT
            fields["sent_at"] = now
        elif result.kind is _Kind.TEMPORARY and (wait := _backoff(attempts)) is not None:
            status = Status.DEFERRED
            fields["next_attempt_at"] = now + wait
        else:
            status = Status.FAILED
            if result.kind is _Kind.TEMPORARY:
                error_text = DeferredText(
                    gettext_noop("Gave up after %(count)s attempts: %(error)s"),
                    {"count": attempts, "error": error_text or error},
                )
                error = error_text.render()
        check_transition(Status.SENDING, status)
        updated = _store_outcome(
            message_id=row.pk,
            worker=self.worker_id,
            status=status,
            error=error,
            error_text=error_text.as_json() if error_text is not None else {},
            fields=fields,
            attempt=(
                row.pk,
                self.configuration.pk,
                started_at,
                duration_ms,
                self.worker_id,
                AttemptOutcome(status).value,
                result.reply_code,
                result.reply_text[:2000],
            ),
        )
        self.pending.pop(row.pk, None)
        if not updated:
            # The sweeper took the row back (our lease had expired) and another worker may
            # be sending it: stop, so we do not send the rest of our batch twice as well.
            logger.warning(
                "Mail #%s was taken back from worker %s before its outcome was written.",
                row.pk,
                self.worker_id,
            )
            self.lease_lost = True
            return
        if status == Status.SENT:
            self.stats.sent += 1
        elif status == Status.DEFERRED:
            self.stats.deferred += 1
        else:
            self.stats.failed += 1

    def defer_all(
        self,
        rows: Sequence[OutboxMessage],
        failure: Failure,
        *,
        started_at: datetime,
        duration_ms: int,
    ) -> None:
        """The connection could not be opened (or died for good): every remaining mail of
        the batch is deferred with that error, one attempt each, in one transaction.

        This includes configuration problems (an undecryptable password, a CA file that
        cannot be read, a login the server refuses with 535, TLS not offered): such a
        problem is fixed by an administrator, after which the mail should simply go
        out, so it is deferred like a server that is down, and fails only once the
        retries are used up. The server sees one connection attempt per batch, not one
        per mail, and the run stops (no immediate new run: the sweeper comes back in a
        minute and the deferred mails follow their backoff)."""
        result = _Result(
            kind=_Kind.TEMPORARY,
            error=failure.error,
            error_text=failure.error_text,
            reply_code=failure.reply_code,
            reply_text=_reply_or_reason(failure),
        )
        with transaction.atomic():
            for position, row in enumerate(rows):
                self._write(
                    row,
                    result,
                    started_at=started_at,
                    duration_ms=duration_ms if position == 0 else 0,
                )

    def release_pending(self) -> None:
        """Give claimed, unsent rows back as they were (no attempt counted)."""
        if not self.pending:
            return
        by_status: dict[str, list[int]] = defaultdict(list)
        for pk, row in self.pending.items():
            by_status[row.status].append(pk)
        released = 0
        for status, ids in by_status.items():
            check_transition(Status.SENDING, status)
            released += OutboxMessage.objects.filter(
                pk__in=ids, status=Status.SENDING, claimed_by=self.worker_id
            ).update(status=status, lease_expires_at=None, claimed_by="")
        self.stats.released += released
        self.pending.clear()


def _sql() -> dict[str, str]:
    """The per-mail statements, written out: the ORM's query building would cost more than
    the database round trip itself, once per mail. Names come from the models' _meta."""
    quote = connection.ops.quote_name
    message = OutboxMessage._meta
    attempt = DeliveryAttempt._meta

    def column(meta: Options, name: str) -> str:
        field = meta.get_field(name)
        if not isinstance(field, Field) or field.column is None:
            raise TypeError(f"{meta.label}.{name} is no column")
        return field.column

    columns = ", ".join(
        quote(column(attempt, name))
        for name in (
            "message",
            "smtp_configuration",
            "started_at",
            "duration_ms",
            "worker",
            "outcome",
            "reply_code",
            "reply_text",
        )
    )
    assignments = ", ".join(
        f"{quote(column(message, name))} = %s"
        for name in (
            "status",
            "error_message",
            "error_text",
            "attempt_count",
            "lease_expires_at",
            "claimed_by",
            "next_attempt_at",
            "sent_at",
        )
    )
    # Identifiers from the models only; every value is a query parameter.
    update = " ".join(
        [
            f"UPDATE {quote(message.db_table)} SET {assignments}",  # noqa: S608
            f"WHERE {quote(column(message, 'id'))} = %s",
            f"AND {quote('status')} = %s AND {quote('claimed_by')} = %s",
        ]
    )
    insert = " ".join(
        [
            f"INSERT INTO {quote(attempt.db_table)} ({columns})",
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        ]
    )
    # PostgreSQL: both in one statement; the count says whether the row was still ours.
    both = " ".join(
        [
            f"WITH changed AS ({update} RETURNING 1)",
            insert,
            "RETURNING (SELECT count(*) FROM changed)",
        ]
    )
    return {"update": update, "insert": insert, "both": both}


_statements: dict[str, dict[str, str]] = {}


def _store_outcome(
    *,
    message_id: int,
    worker: str,
    status: str,
    error: str,
    error_text: dict,
    fields: dict,
    attempt: tuple,
) -> bool:
    """Write a mail's new status and its attempt; False if the row was no longer ours."""
    # The wrapper itself, not the proxy: every attribute of the proxy is a lookup of
    # the thread's connection, several per mail.
    db = connections[DEFAULT_DB_ALIAS]
    statements = _statements.get(db.vendor)
    if statements is None:
        statements = _statements[db.vendor] = _sql()
    adapt = db.ops.adapt_datetimefield_value
    update_params = [
        status,
        error,
        # Jsonb on PostgreSQL (a prepared statement needs the type), JSON text elsewhere.
        db.ops.adapt_json_value(error_text, None),
        fields["attempt_count"],
        None,
        "",
        adapt(fields["next_attempt_at"]),
        adapt(fields.get("sent_at")),
        message_id,
        Status.SENDING.value,
        worker,
    ]
    attempt_params = list(attempt)
    attempt_params[2] = adapt(attempt_params[2])
    if db.vendor == "postgresql":
        # A server-side prepared statement (psycopg binds the parameters on the server):
        # parsing and planning it would cost PostgreSQL more than running it, per mail.
        # Django's own cursors bind on the client and cannot prepare.
        # wrap_database_errors: a failure still counts as Django's (a dead connection is
        # then closed at the end of the task rather than reused).
        db.ensure_connection()
        with (
            db.wrap_database_errors,
            psycopg.Cursor(db.connection) as cursor,
        ):
            cursor.execute(statements["both"], [*update_params, *attempt_params], prepare=True)
            row = cursor.fetchone()
            return row is not None and row[0] == 1
    with db.cursor() as cursor:
        cursor.execute(statements["update"], update_params)
        updated = cursor.rowcount
        cursor.execute(statements["insert"], attempt_params)
        return updated == 1


@contextlib.contextmanager
def _relaxed_commit() -> Iterator[None]:
    """PostgreSQL: during a run, commits return without waiting for the WAL flush.

    On a disk where a flush takes milliseconds, waiting for it once per mail would
    cap delivery at a few hundred mails a second. The commit is still atomic and
    immediately visible; only if the database server itself crashes can the last
    fraction of a second of outcomes be lost — those mails then come back as
    "sending", are taken back by the sweeper and sent again (with the same
    Message-ID): duplicates, never a lost mail. Enqueueing stays fully durable.
    settings.CALMAIL_DELIVERY_ASYNC_COMMIT = False waits for every flush.
    """
    if connection.vendor != "postgresql" or not settings.CALMAIL_DELIVERY_ASYNC_COMMIT:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        if connection.connection is not None and not connection.needs_rollback:
            with contextlib.suppress(Exception), connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")


# Claiming ---------------------------------------------------------------------------------


def next_retry_at(configuration_id: int) -> datetime | None:
    """When the configuration's next deferred mail is due again (None: none deferred)."""
    return OutboxMessage.objects.filter(
        smtp_configuration_id=configuration_id, status=Status.DEFERRED
    ).aggregate(first=Min("next_attempt_at"))["first"]


def _due(configuration_id: int, now: datetime) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(
        smtp_configuration_id=configuration_id,
        status__in=DUE_STATUSES,
        next_attempt_at__lte=now,
    )


def _claim(run: _Run, *, limit: int, now: datetime) -> tuple[list[OutboxMessage], datetime | None]:
    """Claim up to ``limit`` due rows for this worker; (rows, when a rate limit frees up).

    Rows keep their pre-claim status in memory (row.status), for giving them back."""
    configuration = run.configuration
    lease_until = now + timedelta(seconds=run.lease_seconds)
    check_transition(Status.QUEUED, Status.SENDING)
    check_transition(Status.DEFERRED, Status.SENDING)
    with transaction.atomic():
        if configuration.rate_limit_per_minute or configuration.rate_limit_per_hour:
            # Serialise claims of this configuration, so two workers cannot both spend
            # the same remaining allowance (PostgreSQL; SQLite's write lock does it anyway).
            list(
                SmtpConfiguration.objects.select_for_update(no_key=True)
                .filter(pk=configuration.pk)
                .values_list("pk", flat=True)
            )
            allowance = rate_allowance(configuration=configuration, now=now)
            if allowance.count == 0:
                return [], allowance.free_at
            if allowance.count is not None:
                limit = min(limit, allowance.count)
        due = _due(configuration.pk, now).order_by("next_attempt_at", "id").only(*SEND_FIELDS)
        claim = {
            "status": Status.SENDING,
            "lease_expires_at": lease_until,
            "claimed_by": run.worker_id,
        }
        if connection.features.has_select_for_update_skip_locked:
            # Rows another worker is claiming right now are skipped, not waited for.
            rows = list(due.select_for_update(skip_locked=True)[:limit])
            if rows:
                OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).update(**claim)
        else:
            # SQLite: the IMMEDIATE transaction holds the database's write lock from its
            # start, so no other claim runs in between; the conditional UPDATE and the
            # re-read keep this correct should that ever not hold.
            rows = list(due[:limit])
            ids = [row.pk for row in rows]
            if ids:
                updated = _due(configuration.pk, now).filter(pk__in=ids).update(**claim)
                if updated != len(ids):
                    ours = set(
                        OutboxMessage.objects.filter(
                            pk__in=ids,
                            status=Status.SENDING,
                            claimed_by=run.worker_id,
                            lease_expires_at=lease_until,
                        ).values_list("pk", flat=True)
                    )
                    rows = [row for row in rows if row.pk in ours]
    for row in rows:
        run.pending[row.pk] = row
    run.renew_at = time.monotonic() + run.lease_seconds / 3
    return rows, None


# Sending a batch --------------------------------------------------------------------------


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))


def _send_batch(run: _Run, rows: list[OutboxMessage], conn: _Connection) -> bool:
    """Send claimed rows one by one; False when the connection failed and the run must stop."""
    configuration = run.configuration
    attachments = _load_for_building(rows)
    for position, row in enumerate(rows):
        if run.halted:
            return False
        run.renew_if_due()
        started_at = timezone.now()
        started = time.monotonic()
        try:
            envelope = _prepare(row, attachments.get(row.pk, ()))
        except SoftTimeLimitExceeded:
            raise
        except Exception as exc:
            # A mail that cannot be built now will not build next time either.
            if isinstance(exc, mime.UnbuildableMessage):
                error_text = exc.text
            else:
                logger.exception("Mail #%s cannot be built.", row.pk)
                error_text = DeferredText(
                    gettext_noop("The mail cannot be built: %(error)s"),
                    {"error": f"{type(exc).__name__}: {exc}"},
                )
            run.record(
                row,
                _Result(kind=_Kind.PERMANENT, error=error_text.render(), error_text=error_text),
                started_at=started_at,
                duration_ms=_elapsed_ms(started),
            )
            continue
        for try_number in (1, 2):
            try:
                conn.ensure_open()
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                run.defer_all(
                    rows[position:],
                    assess_failure(exc, configuration),
                    started_at=started_at,
                    duration_ms=_elapsed_ms(started),
                )
                return False
            try:
                sent = conn.send(envelope)
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                failure = assess_failure(exc, configuration)
                if failure.disconnected and try_number == 1:
                    # The server hung up (an idle timeout, a restart): once more on a new
                    # connection, then it counts as a connection failure.
                    conn.drop()
                    continue
                if failure.disconnected or failure.connection_failed:
                    conn.drop()
                    run.defer_all(
                        rows[position:],
                        failure,
                        started_at=started_at,
                        duration_ms=_elapsed_ms(started),
                    )
                    return False
                if conn.broken:
                    # e.g. a 421: smtplib closed the connection; the next mail reconnects.
                    conn.drop()
                result = _failed(failure)
            else:
                refused = (
                    DeferredText(
                        gettext_noop("Sent, but not to these recipients: %(refused)s"),
                        {"refused": sent.refused},
                    )
                    if sent.refused
                    else None
                )
                result = _Result(
                    kind=_Kind.SENT,
                    error=refused.render() if refused is not None else "",
                    error_text=refused,
                    reply_code=sent.reply_code,
                    reply_text=sent.reply_text,
                )
            run.record(row, result, started_at=started_at, duration_ms=_elapsed_ms(started))
            break
    return True


# The engine -------------------------------------------------------------------------------


def deliver_due(
    *,
    configuration_id: int,
    worker_id: str,
    max_messages: int | None = None,
    on_backlog: Callable[[], None] | None = None,
) -> DeliveryStats:
    """Claim and send the due mail of one SMTP configuration until none is due or a limit
    stops the run (rate limit, ``max_messages``, settings.CALMAIL_DELIVERY_RUN_SECONDS).

    The run starts with one SMTP session in the caller's thread and adds sessions in
    threads of their own while a backlog remains, each holding one of the
    configuration's connection slots, so a worker process alone can use every parallel
    connection the administrator allowed (see _Crew).

    ``worker_id`` names this worker in the rows it claims and in the attempts it writes.
    ``on_backlog`` is called at most once, when a full batch was claimed and another
    connection slot is free: the caller may start a parallel run (the task dispatches one).
    Never call this inside a transaction: each mail's outcome must commit on its own.
    """
    stats = DeliveryStats()
    configuration = SmtpConfiguration.objects.filter(pk=configuration_id).first()
    if configuration is None:
        stats.stop_reason = StopReason.NO_CONFIGURATION
        return stats
    if not _due(configuration.pk, timezone.now()).exists():
        # Most nudges find nothing to do (one per enqueued mail): one cheap query.
        stats.stop_reason = StopReason.DRAINED
        return stats
    crew = _Crew(
        configuration=configuration,
        worker_id=worker_id,
        max_messages=max_messages,
        # Sessions in threads need their own database connections, which cannot see
        # the rows of a transaction the caller holds open (tests do).
        may_grow=max_messages is None and not connection.in_atomic_block,
    )
    try:
        first = crew.session(on_backlog=on_backlog)
    except BaseException:
        # SoftTimeLimitExceeded, a database error: the other sessions stop after their
        # current mail (and give back what they claimed) before this one gives up.
        crew.halt.set()
        raise
    finally:
        crew.finish()
    stats.stop_reason = first.stop_reason
    stats.rate_limited_until = first.rate_limited_until
    for session_stats in crew.finished:
        stats.add(session_stats)
    stats.sessions = crew.most_at_once
    if crew.errors:
        # A session's database went away: the task retries (its rows come back by lease).
        raise crew.errors[0]
    if stats.stop_reason in _CONTINUABLE:
        # Checked after freeing the slots: a nudge that found every slot taken just before
        # is then not lost (its mail is seen here, and the caller runs again).
        stats.more_due = _due(configuration.pk, timezone.now()).exists()
    return stats


class _Crew:
    """The SMTP sessions of one delivery run in this worker process.

    Each session holds one connection slot (so across all workers never more than
    ``max_connections`` sessions exist), one connection to the server and one database
    connection, and claims and sends batches on its own: the per-mail commit, the rate
    limits (claims are serialised) and "at most the mail in flight twice if the process
    dies" hold per session. The first runs in the caller's thread; whenever a session
    claims a full batch and a slot is free, one more starts in a thread, up to
    settings.CALMAIL_DELIVERY_SESSIONS_PER_WORKER. Threads, not processes: a session
    spends its time waiting for the server (100 to 300 ms per mail at Microsoft 365), and
    a worker's database connection and memory are not multiplied by ten for that.
    """

    def __init__(
        self,
        *,
        configuration: SmtpConfiguration,
        worker_id: str,
        max_messages: int | None,
        may_grow: bool,
    ):
        self.configuration = configuration
        self.worker_id = worker_id
        self.max_messages = max_messages
        self.limit = (
            min(configuration.max_connections, settings.CALMAIL_DELIVERY_SESSIONS_PER_WORKER)
            if may_grow
            else 1
        )
        self.deadline = time.monotonic() + settings.CALMAIL_DELIVERY_RUN_SECONDS
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.finished: list[DeliveryStats] = []
        self.errors: list[BaseException] = []
        # Sessions started (the limit counts these) and sessions holding a slot.
        self.running = 0
        self.holding = 0
        self.most_at_once = 0
        # Error texts written by sessions in threads are in the caller's language.
        self.language = translation.get_language()

    def grow(self) -> None:
        """Start one more session if the limit allows and a slot looks free."""
        with self.lock:
            if self.halt.is_set() or self.running + 1 > self.limit:
                return
            if not slot_available(configuration=self.configuration, now=timezone.now()):
                return
            self.running += 1  # counted now, so two batches cannot both pass the limit
            thread = threading.Thread(
                target=self._in_thread,
                name=f"calmail-session-{self.configuration.pk}-{len(self.threads) + 1}",
                daemon=True,
            )
            self.threads.append(thread)
        thread.start()

    def _in_thread(self) -> None:
        try:
            with translation.override(self.language):
                self.session(counted=True)
        except BaseException as exc:
            logger.exception("A delivery session of worker %s failed.", self.worker_id)
            with self.lock:
                self.errors.append(exc)
            self.halt.set()
        finally:
            # This thread's own database connection.
            connections.close_all()

    def session(
        self, *, on_backlog: Callable[[], None] | None = None, counted: bool = False
    ) -> DeliveryStats:
        """One session: take a slot, send until done, free the slot. Returns its figures."""
        stats = DeliveryStats()
        if not counted:
            with self.lock:
                self.running += 1
        try:
            self._session(stats, on_backlog)
        finally:
            with self.lock:
                self.running -= 1
                self.finished.append(stats)
        return stats

    def _session(self, stats: DeliveryStats, on_backlog: Callable[[], None] | None) -> None:
        configuration = self.configuration
        lease_seconds = settings.CALMAIL_SENDING_LEASE_SECONDS
        run = _Run(
            configuration=configuration,
            worker_id=self.worker_id,
            stats=stats,
            lease_seconds=lease_seconds,
            halt=self.halt,
        )
        now = timezone.now()
        run.slot_id = slot_acquire(
            configuration=configuration,
            holder=self.worker_id,
            now=now,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
        if run.slot_id is None:
            stats.stop_reason = StopReason.NO_SLOT
            return
        with self.lock:
            self.holding += 1
            self.most_at_once = max(self.most_at_once, self.holding)
        conn = _Connection(configuration, stats)
        try:
            with _relaxed_commit():
                _drain(
                    run,
                    conn,
                    batch_size=max(1, settings.CALMAIL_DELIVERY_BATCH_SIZE),
                    max_messages=self.max_messages,
                    deadline=self.deadline,
                    on_backlog=on_backlog,
                    grow=self.grow if self.limit > 1 else None,
                )
        finally:
            try:
                conn.close()
                run.release_pending()
            finally:
                slot_release(slot_id=run.slot_id, holder=self.worker_id)
                with self.lock:
                    self.holding -= 1

    def finish(self) -> None:
        """Wait until every session in a thread has ended (a session may start another
        while we wait)."""
        while True:
            with self.lock:
                waiting = [thread for thread in self.threads if thread.is_alive()]
            if not waiting:
                return
            for thread in waiting:
                thread.join()


def _drain(
    run: _Run,
    conn: _Connection,
    *,
    batch_size: int,
    max_messages: int | None,
    deadline: float,
    on_backlog: Callable[[], None] | None,
    grow: Callable[[], None] | None = None,
) -> None:
    """Claim and send batch after batch; sets run.stats.stop_reason."""
    stats = run.stats
    configuration = run.configuration
    backlog_reported = on_backlog is None
    # Seconds per mail in the last batch (None before the first).
    pace: float | None = None
    while True:
        if max_messages is not None and stats.attempted >= max_messages:
            stats.stop_reason = StopReason.MAX_MESSAGES
            return
        if stats.batches and time.monotonic() >= deadline:
            stats.stop_reason = StopReason.TIME_BUDGET
            return
        if run.lease_lost:
            stats.stop_reason = StopReason.LEASE_LOST
            return
        if run.halt.is_set():
            stats.stop_reason = StopReason.STOPPED
            return
        # A slow server gets smaller claims: a session holds about CLAIM_SECONDS of work, so
        # at the end of a backlog no session still sends 50 mails while the others idle.
        limit = batch_size if pace is None else max(1, min(batch_size, int(CLAIM_SECONDS / pace)))
        if max_messages is not None:
            limit = min(limit, max_messages - stats.attempted)
        now = timezone.now()
        rows, free_at = _claim(run, limit=limit, now=now)
        if free_at is not None:
            stats.stop_reason = StopReason.RATE_LIMITED
            stats.rate_limited_until = free_at
            return
        if not rows:
            stats.stop_reason = StopReason.DRAINED
            return
        stats.claimed += len(rows)
        stats.batches += 1
        if len(rows) == limit and configuration.max_connections > 1:
            # A backlog: more sessions in this process, and (once) a run in another.
            if grow is not None:
                grow()
            if not backlog_reported and slot_available(configuration=configuration, now=now):
                backlog_reported = True
                if on_backlog is not None:
                    on_backlog()
        started = time.monotonic()
        sent_all = _send_batch(run, rows, conn)
        pace = (time.monotonic() - started) / len(rows)
        if not sent_all:
            if run.lease_lost:
                stats.stop_reason = StopReason.LEASE_LOST
            elif run.halt.is_set():
                stats.stop_reason = StopReason.STOPPED
            else:
                stats.stop_reason = StopReason.CONNECTION_FAILED
            return


def sweep(*, now: datetime | None = None) -> SweepStats:
    """Take back rows of dead workers, queue scheduled mail whose time came, and dispatch
    one delivery task per configuration with due mail. Cheap: every query runs on an
    index ((status, next_attempt_at), the partial lease index, one EXISTS per configuration).
    """
    now = now or timezone.now()
    stats = SweepStats()
    check_transition(Status.SENDING, Status.QUEUED)
    # At-least-once: such a row was in flight on a worker that died (or hung past its
    # lease); it may have reached the server, and is sent again with the same Message-ID.
    stats.recovered = OutboxMessage.objects.filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True), status=Status.SENDING
    ).update(status=Status.QUEUED, lease_expires_at=None, claimed_by="")
    check_transition(Status.SCHEDULED, Status.QUEUED)
    stats.scheduled = OutboxMessage.objects.filter(
        status=Status.SCHEDULED, next_attempt_at__lte=now
    ).update(status=Status.QUEUED)
    for configuration_id in SmtpConfiguration.objects.order_by("pk").values_list("pk", flat=True):
        if _due(configuration_id, now).exists():
            stats.dispatched.append(configuration_id)
            transaction.on_commit(partial(dispatch_delivery, configuration_id=configuration_id))
    if stats.recovered:
        logger.warning("Took back %s mails from workers whose lease expired.", stats.recovered)
    return stats
