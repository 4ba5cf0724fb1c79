"""Retention: old log entries and old finished outbox mail are deleted in small batches.

Each batch is one short statement in its own transaction, so the purge never holds locks
on the log or the outbox for long and runs beside normal traffic. Ids are selected first
(through the time indexes), then deleted by primary key.
"""

import datetime
import logging
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from maillog.models import Category, Level, LogEntry

logger = logging.getLogger(__name__)

LOG_BATCH_SIZE = 5000
OUTBOX_BATCH_SIZE = 500


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


def _delete_in_batches(queryset, model, batch_size: int) -> tuple[int, int]:
    deleted = batches = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted, batches
        with transaction.atomic():
            count, _detail = model.objects.filter(pk__in=ids).delete()
        deleted += count
        batches += 1


@dataclass(frozen=True)
class PurgeResult:
    log_entries: dict[str, int]
    outbox_messages: int

    @property
    def total(self) -> int:
        return sum(self.log_entries.values()) + self.outbox_messages


def purge_log(*, now: datetime.datetime | None = None, batch_size: int = LOG_BATCH_SIZE) -> dict:
    """Delete log entries older than their retention; returns deleted counts per rule."""
    now = now or timezone.now()
    result = {}
    for key, condition, days in retention_rules():
        cutoff = now - datetime.timedelta(days=days)
        queryset = LogEntry.objects.filter(condition, time__lt=cutoff)
        result[key], _batches = _delete_in_batches(queryset, LogEntry, batch_size)
    return result


def purge_outbox(
    *, now: datetime.datetime | None = None, batch_size: int = OUTBOX_BATCH_SIZE
) -> int:
    """Delete finished outbox mail (sent, failed, cancelled) whose last activity is older
    than CALMAIL_OUTBOX_RETENTION_DAYS, with attempts, attachments and their files.

    As mailbox.services.message_delete: a mail being sent is never touched, and files go
    only after the rows are surely gone (on commit).
    """
    from mailbox.models import OutboxAttachment, OutboxMessage, Status

    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.CALMAIL_OUTBOX_RETENTION_DAYS)
    queryset = OutboxMessage.objects.filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True),
        status__in=[Status.SENT, Status.FAILED, Status.CANCELLED],
        created_at__lt=cutoff,
    )
    storage = OutboxAttachment._meta.get_field("file").storage
    deleted = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            # Re-checked inside the transaction: a mail resent meanwhile is kept. The rows
            # are locked first, so the sent mails counted and the files removed are exactly
            # those of the mails deleted.
            locked = list(
                OutboxMessage.objects.select_for_update()
                .filter(pk__in=ids, status__in=[Status.SENT, Status.FAILED, Status.CANCELLED])
                .order_by("pk")
                .values_list("pk", "status", "action_id")
            )
            doomed = [pk for pk, _status, _action in locked]
            names = [
                name
                for name in OutboxAttachment.objects.filter(message_id__in=doomed).values_list(
                    "file", flat=True
                )
                if name
            ]
            _keep_sent_counts(locked)
            batch = OutboxMessage.objects.filter(pk__in=doomed)
            _total, per_model = batch.delete()
            transaction.on_commit(lambda names=names: _delete_files(storage, names))
        deleted += per_model.get(OutboxMessage._meta.label, 0)


def _keep_sent_counts(rows: list[tuple[int, str, int | None]]) -> None:
    """An action's sent count is a lifetime count: before its sent mails leave the
    outbox, they are added to the action's purged count, in the deleting transaction
    (so a list page sees either the mails or the count, never both or neither)."""
    from actions.models import Action
    from mailbox.models import Status

    per_action = Counter(
        action_id for _pk, status, action_id in rows if status == Status.SENT and action_id
    )
    by_count: dict[int, list[int]] = {}
    for action_id, count in per_action.items():
        by_count.setdefault(count, []).append(action_id)
    for count, action_ids in sorted(by_count.items()):
        Action.objects.filter(pk__in=sorted(action_ids)).update(
            purged_sent_count=F("purged_sent_count") + count
        )


def _delete_files(storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError as exc:
            logger.warning(
                "Retention: could not delete a stored attachment (%s)", exc.__class__.__name__
            )


def purge(*, now: datetime.datetime | None = None) -> PurgeResult:
    """Everything past its retention: log entries, then outbox mail."""
    now = now or timezone.now()
    return PurgeResult(log_entries=purge_log(now=now), outbox_messages=purge_outbox(now=now))
