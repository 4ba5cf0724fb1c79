"""Retention: old log entries are deleted in small batches.

Each batch is one short statement in its own transaction, so the purge never holds locks
on the log for long and runs beside normal traffic. Ids are selected first (through the
time indexes), then deleted by primary key. (The outbox keeps its own retention:
mailbox.retention.)
"""

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from maillog.models import Category, Level, LogEntry

BATCH_SIZE = 5000


def retention_rules() -> list[tuple[str, Q, int]]:
    """(key, condition, days): disjoint conditions, so each entry has exactly one rule.
    An audit entry keeps the audit period whatever its level or category; a debug entry
    the debug period; then delivery; everything else the default."""
    days = settings.CALMAIL_LOG_RETENTION_DAYS
    not_audit = Q(audit_action="")
    debug = Q(level=Level.DEBUG)
    delivery = Q(category=Category.DELIVERY)
    return [
        ("audit", ~not_audit, days["audit"]),
        ("debug", not_audit & debug, days["debug"]),
        ("delivery", not_audit & ~debug & delivery, days["delivery"]),
        ("default", not_audit & ~debug & ~delivery, days["default"]),
    ]


def _delete_in_batches(queryset, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            count, _detail = LogEntry.objects.filter(pk__in=ids).delete()
        deleted += count


def purge_log(*, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE) -> dict:
    """Delete log entries older than their retention; returns deleted counts per rule."""
    now = now or timezone.now()
    result = {}
    for key, condition, days in retention_rules():
        cutoff = now - datetime.timedelta(days=days)
        queryset = LogEntry.objects.filter(condition, time__lt=cutoff)
        result[key] = _delete_in_batches(queryset, batch_size)
    return result
