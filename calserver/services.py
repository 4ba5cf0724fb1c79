"""Writes of the connector: the connection's settings, its test, the sync runs."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from calserver import sync as sync_engine
from calserver.client import CalServerClient, CalServerError
from calserver.mapping import KINDS, MappedRecord, map_record, preset
from calserver.models import (
    ApiVersion,
    CalServerConnection,
    SyncRun,
    SyncStatus,
    SyncTrigger,
)
from maillog.models import AuditAction, Category, Level
from maillog.services import diff_fields, log_audit, log_event, snapshot

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

logger = logging.getLogger(__name__)

SECRET_FIELDS = ("password", "api_key")
# Changing any of these voids the passed test (and with it the schedule).
TESTED_FIELDS = (
    "base_url",
    "api_version",
    "username",
    "password",
    "api_key",
    "credential_transport",
    "email",
    "device_name",
    "paths",
    "mapping",
    "page_size",
    "limit_param",
    "offset_param",
    "page_number_param",
    "page_size_param",
)
AUDITED_FIELDS = (*TESTED_FIELDS, "timeout", "sync_enabled", "sync_interval_minutes")
PREVIEW_RECORDS = 10
# A run "running" longer than this lost its worker.
STALE_RUN = dt.timedelta(hours=2)


def new_connection(*, api_version: str = ApiVersion.V1) -> CalServerConnection:
    """An unsaved connection with the presets of the API version."""
    chosen = preset(api_version)
    return CalServerConnection(
        api_version=api_version, paths=chosen["paths"], mapping=chosen["mapping"]
    )


@transaction.atomic
def connection_save(
    *, connection: CalServerConnection, values: dict[str, Any], secrets: dict[str, str | None]
) -> CalServerConnection:
    """Create or update the connection. `secrets`: a new value, "" to remove it, or None
    to keep the stored one. A change to what the test covered voids the test and turns
    the schedule off until the connection passes again."""
    creating = connection.pk is None
    before = {} if creating else snapshot(connection, AUDITED_FIELDS)
    for name, value in values.items():
        setattr(connection, name, value)
    for name, value in secrets.items():
        if value is not None:
            setattr(connection, name, value)
    changed = creating or any(
        before.get(name) != getattr(connection, name) for name in TESTED_FIELDS
    )
    if changed:
        connection.tested_at = None
        connection.sync_enabled = False
        # A token minted for other credentials is of no use.
        connection.api_token = ""
    connection.full_clean()
    connection.save()
    after = snapshot(connection, AUDITED_FIELDS)
    log_audit(
        action=AuditAction.CREATED if creating else AuditAction.UPDATED,
        obj=connection,
        changes=diff_fields(before, after, secret_fields=SECRET_FIELDS),
        object_label=_label(connection),
    )
    return connection


def _label(connection: CalServerConnection) -> str:
    return f"calServer {connection.base_url}"


# --- the test -----------------------------------------------------------------------------


@dataclass
class KindPreview:
    kind: str
    path: str
    total: int | None = None
    records: list[MappedRecord] = field(default_factory=list)
    error: str = ""


@dataclass
class ConnectionTest:
    ok: bool
    error: str = ""
    kinds: list[KindPreview] = field(default_factory=list)
    duration: float = 0.0


def connection_test(*, connection: CalServerConnection) -> ConnectionTest:
    """Sign in, read the first page of each configured resource and map its first
    records. Passing it (every resource answered) allows the schedule. Never raises
    for calServer's sake; nothing of the result carries a secret."""
    started = time.monotonic()
    client = CalServerClient(connection)
    result = ConnectionTest(ok=True)
    kinds = [kind for kind in KINDS if connection.path_of(kind)]
    try:
        client.authenticate()
        for kind in kinds:
            preview = KindPreview(kind=kind, path=connection.path_of(kind))
            result.kinds.append(preview)
            try:
                page = client.page(kind, 0)
            except CalServerError as exc:
                if isinstance(exc, sync_engine.STOPPING_ERRORS):
                    raise
                preview.error = client.redact(str(exc))
                result.ok = False
                continue
            preview.total = page.total
            mapping = connection.mapping_of(kind)
            preview.records = [
                map_record(kind, mapping, raw) for raw in page.records[:PREVIEW_RECORDS]
            ]
    except CalServerError as exc:
        result.ok = False
        result.error = client.redact(str(exc))
    finally:
        client.close()
    if not kinds and result.ok:
        result.ok = False
        result.error = _("No resource path is configured.")
    result.duration = time.monotonic() - started
    _record_test(connection=connection, result=result)
    return result


@transaction.atomic
def _record_test(*, connection: CalServerConnection, result: ConnectionTest) -> None:
    tested_at = timezone.now() if result.ok else None
    CalServerConnection.objects.filter(pk=connection.pk).update(tested_at=tested_at)
    connection.tested_at = tested_at
    if not result.ok:
        CalServerConnection.objects.filter(pk=connection.pk).update(sync_enabled=False)
        connection.sync_enabled = False
    log_event(
        category=Category.CONFIGURATION,
        level=Level.INFO if result.ok else Level.WARNING,
        message=(
            gettext_noop("Connection test of %(object)s succeeded")
            if result.ok
            else gettext_noop("Connection test of %(object)s failed")
        ),
        params={"object": _label(connection)},
        obj=connection,
        object_label=_label(connection),
        details={
            "error": result.error,
            "resources": {k.kind: k.error or "ok" for k in result.kinds},
            "duration_ms": round(result.duration * 1000),
        },
    )


# --- sync runs ----------------------------------------------------------------------------


def sync_run_create(
    *, connection: CalServerConnection, trigger: str, user: User | AnonymousUser | None = None
) -> SyncRun | None:
    """A new run, or None while another one is running (two at once would race)."""
    with transaction.atomic():
        locked = CalServerConnection.objects.select_for_update().get(pk=connection.pk)
        now = timezone.now()
        running = locked.runs.filter(status=SyncStatus.RUNNING)
        # A run whose worker died holds the lock no longer than STALE_RUN.
        for run in running.filter(started_at__lt=now - STALE_RUN):
            run.status = SyncStatus.FAILED
            run.finished_at = now
            run.last_error = _("The run was interrupted (its worker stopped).")
            run.save(update_fields=["status", "finished_at", "last_error"])
        if running.exists():
            return None
        return SyncRun.objects.create(
            connection=locked,
            trigger=trigger,
            requested_by=user if user is not None and user.is_authenticated else None,
            started_at=now,
        )


def sync_due_run(*, now: dt.datetime | None = None) -> SyncRun | None:
    """The scheduled run that is due now, created; None if none is."""
    now = now or timezone.now()
    connection = CalServerConnection.objects.order_by("pk").first()
    if connection is None or not connection.sync_enabled or connection.tested_at is None:
        return None
    last = connection.runs.order_by("-started_at").first()
    if last is not None and last.started_at > now - dt.timedelta(
        minutes=connection.sync_interval_minutes
    ):
        return None
    return sync_run_create(connection=connection, trigger=SyncTrigger.SCHEDULE)


def sync_run_execute(*, run_id: int) -> SyncRun:
    """Run a sync: every configured kind, page by page; upsert by calServer id; records
    missing from a complete pass of their kind become inactive; nothing is deleted.
    One bad record is counted and explained, never stops the rest; 401/403 stop the run."""
    run = SyncRun.objects.select_related("connection").get(pk=run_id)
    if run.status != SyncStatus.RUNNING:
        return run
    connection = run.connection
    client = CalServerClient(connection)
    tally = sync_engine.Tally()
    error = ""
    try:
        error = sync_engine.sync_all(client=client, connection=connection, tally=tally)
    except Exception as exc:
        # A bug of ours must still end the run: the message names the class only, a
        # stray secret in an exception text never reaches the page or the Log.
        logger.error("calServer sync run #%s crashed: %s", run.pk, exc.__class__.__name__)
        error = _("The sync stopped on an internal error (%(error)s).") % {
            "error": exc.__class__.__name__
        }
    finally:
        client.close()
    return _finish_run(run=run, tally=tally, error=client.redact(error))


@transaction.atomic
def _finish_run(*, run: SyncRun, tally: sync_engine.Tally, error: str) -> SyncRun:
    run.finished_at = timezone.now()
    run.status = SyncStatus.FAILED if error else SyncStatus.SUCCEEDED
    run.last_error = error
    for name in ("created", "updated", "unchanged", "inactivated", "rejected"):
        setattr(run, name, tally.total(name))
    run.per_kind = tally.per_kind
    run.rejections = tally.rejections
    run.save()
    connection = run.connection
    log_event(
        category=Category.CONFIGURATION,
        level=Level.WARNING if error or run.rejected else Level.INFO,
        message=(
            gettext_noop(
                "calServer sync failed: %(error)s (%(created)s created, %(updated)s updated, "
                "%(unchanged)s unchanged, %(inactivated)s inactivated, %(rejected)s rejected)"
            )
            if error
            else gettext_noop(
                "calServer sync finished: %(created)s created, %(updated)s updated, "
                "%(unchanged)s unchanged, %(inactivated)s inactivated, %(rejected)s rejected"
            )
        ),
        params={
            "error": error,
            "created": run.created,
            "updated": run.updated,
            "unchanged": run.unchanged,
            "inactivated": run.inactivated,
            "rejected": run.rejected,
        },
        actor=run.requested_by,
        obj=connection,
        object_label=_label(connection),
        details={
            "run": run.pk,
            "trigger": run.trigger,
            "duration_ms": round((run.finished_at - run.started_at).total_seconds() * 1000),
            "per_kind": run.per_kind,
            "rejections": run.rejections[:20],
        },
    )
    return run
