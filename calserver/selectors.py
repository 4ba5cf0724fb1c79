"""Reads of the connector: the connection, its runs, whether it is failing, which kinds
of calmail's data it manages."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from calserver.models import CalServerConnection, SyncRun, SyncStatus

# A sync failing longer than this is a warning on the overview and in /healthz.
FAILING_FOR = dt.timedelta(days=1)
RUNS_SHOWN = 10
# Model label -> kind, for the edit paths that ask whether calServer manages a model.
MODEL_KINDS = {
    "inventory.customer": "customers",
    "inventory.customercontact": "contacts",
    "inventory.location": "locations",
    "inventory.instrument": "instruments",
    "inventory.supportticket": "tickets",
}


def connection_get() -> CalServerConnection | None:
    """The connection (there is at most one that counts: the first)."""
    return CalServerConnection.objects.order_by("pk").first()


def recent_runs(*, connection: CalServerConnection, count: int = RUNS_SHOWN) -> QuerySet[SyncRun]:
    return connection.runs.select_related("requested_by").order_by("-started_at", "-id")[:count]


def last_success(*, connection: CalServerConnection) -> SyncRun | None:
    return (
        connection.runs.filter(status=SyncStatus.SUCCEEDED).order_by("-finished_at", "-id").first()
    )


def managed_kinds() -> set[str]:
    """The kinds whose data comes from calServer: the connection syncs on schedule and
    the kind has a path and a mapping of its id. calmail's own edit paths of these kinds
    are read-only."""
    connection = connection_get()
    if connection is None or not connection.sync_enabled:
        return set()
    return set(connection.synced_kinds)


def is_managed(model_label: str) -> bool:
    """Is the model ("inventory.customer") managed by calServer?"""
    kind = MODEL_KINDS.get(model_label.lower())
    return kind is not None and kind in managed_kinds()


def failing_since(*, now: dt.datetime | None = None) -> tuple[SyncRun, dt.datetime] | None:
    """The latest run and when the failing began, if the sync has failed for more than
    FAILING_FOR (every run since the last success failed); else None."""
    now = now or timezone.now()
    connection = connection_get()
    if connection is None:
        return None
    latest = (
        connection.runs.exclude(status=SyncStatus.RUNNING).order_by("-started_at", "-id").first()
    )
    if latest is None or latest.status != SyncStatus.FAILED:
        return None
    success = last_success(connection=connection)
    failures = connection.runs.filter(status=SyncStatus.FAILED)
    if success is not None:
        failures = failures.filter(started_at__gt=success.started_at)
    first = failures.order_by("started_at", "id").first()
    began = first.started_at if first is not None else latest.started_at
    if now - began < FAILING_FOR:
        return None
    return latest, began


def failing_sync_warning(*, now: dt.datetime | None = None) -> str | None:
    """The warning for the overview and /healthz when the sync has failed for more than
    a day; None otherwise. Names no credentials (the runs' errors never hold any)."""
    failing = failing_since(now=now)
    if failing is None:
        return None
    latest, began = failing
    return _("The calServer sync has been failing since %(since)s: %(error)s") % {
        "since": date_format(timezone.localtime(began), "SHORT_DATETIME_FORMAT"),
        "error": latest.last_error or _("unknown error"),
    }


def health_details() -> dict:
    """For /healthz (details only, never its status code)."""
    connection = connection_get()
    if connection is None:
        return {}
    failing = failing_since()
    if failing is not None:
        _latest, began = failing
        return {"calserver_sync": f"failing since {began.isoformat()}"}
    success = last_success(connection=connection)
    if success is None or success.finished_at is None:
        return {"calserver_sync": "never succeeded" if connection.sync_enabled else "off"}
    return {"calserver_sync": f"ok, last success {success.finished_at.isoformat()}"}
