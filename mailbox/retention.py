"""Retention of the outbox: the content of finished mail goes after
CALMAIL_OUTBOX_RETENTION_DAYS, its record after CALMAIL_RECORD_RETENTION_YEARS.

The record (recipient, subject, status, times, attempts, Message-ID, who and which
action, attachment names and sizes) is the evidence that a mail went out; the bodies,
the raw mail and the attachment files are the bulk of the storage and hold the personal
data. So the nightly purge first empties old mails' content and marks them
(content_purged_at), and deletes whole records only years later.

Each batch is one short transaction, so the purge never holds locks on the outbox for
long and runs beside normal traffic. Ids are selected first (through an index on the
creation time), then locked, re-checked and changed by primary key.
"""

import datetime
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from mailbox.models import OutboxAttachment, OutboxMessage, Status

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
FINISHED = (Status.SENT, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class PurgeResult:
    contents: int  # mails whose content was deleted
    records: int  # mails deleted with their record

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def content_cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - datetime.timedelta(days=settings.CALMAIL_OUTBOX_RETENTION_DAYS)


def record_cutoff(now: datetime.datetime) -> datetime.datetime:
    return now - relativedelta(years=settings.CALMAIL_RECORD_RETENTION_YEARS)


def _finished_before(cutoff: datetime.datetime) -> Q:
    # The last activity counts: a mail resent yesterday is young, however old its row.
    return Q(status__in=FINISHED, created_at__lt=cutoff) & (
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True)
    )


def purge_outbox(
    *, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE
) -> PurgeResult:
    """Delete old finished mails' content, then the records past their retention."""
    now = now or timezone.now()
    return PurgeResult(
        contents=purge_contents(now=now, batch_size=batch_size),
        records=purge_records(now=now, batch_size=batch_size),
    )


def _batches(queryset: QuerySet[OutboxMessage], batch_size: int) -> Iterator[list[int]]:
    """Ids of the next batch, oldest first, until none is left. Each batch's change takes
    its rows out of the queryset (a row refused under lock no longer matches it either)."""
    previous: list[int] = []
    while True:
        ids = list(queryset.order_by("created_at").values_list("pk", flat=True)[:batch_size])
        # A batch that comes back unchanged would mean no progress: stop rather than spin.
        if not ids or ids == previous:
            return
        previous = ids
        yield ids


def purge_contents(*, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Empty the bodies and the raw mail of finished mails older than
    CALMAIL_OUTBOX_RETENTION_DAYS and delete their attachment files (the attachment rows
    stay, with name and size); mark them content_purged_at. Returns how many mails.

    As mailbox.services.message_delete: a mail being sent is never touched, and files go
    only after the change is committed."""
    now = now or timezone.now()
    condition = _finished_before(content_cutoff(now)) & Q(content_purged_at__isnull=True)
    queryset = OutboxMessage.objects.filter(condition)
    storage = OutboxAttachment._meta.get_field("file").storage
    purged = 0
    for ids in _batches(queryset, batch_size):
        with transaction.atomic():
            # Locked and checked again: a mail resent meanwhile keeps its content.
            locked = list(
                OutboxMessage.objects.select_for_update()
                .filter(condition, pk__in=ids)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            attachments = OutboxAttachment.objects.filter(message_id__in=locked)
            names = [name for name in attachments.values_list("file", flat=True) if name]
            attachments.exclude(file="").update(file="")
            purged += OutboxMessage.objects.filter(pk__in=locked).update(
                body_text="", body_html="", raw_message=b"", content_purged_at=now
            )
            transaction.on_commit(partial(_delete_files, storage, names))
    return purged


def purge_records(*, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Delete finished mails older than CALMAIL_RECORD_RETENTION_YEARS with their attempts,
    attachment rows and any files left. Returns how many mails."""
    now = now or timezone.now()
    condition = _finished_before(record_cutoff(now))
    queryset = OutboxMessage.objects.filter(condition)
    storage = OutboxAttachment._meta.get_field("file").storage
    deleted = 0
    for ids in _batches(queryset, batch_size):
        with transaction.atomic():
            # Locked first, so the sent mails counted and the files removed are exactly
            # those of the mails deleted.
            locked = list(
                OutboxMessage.objects.select_for_update()
                .filter(condition, pk__in=ids)
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
            _total, per_model = OutboxMessage.objects.filter(pk__in=doomed).delete()
            transaction.on_commit(partial(_delete_files, storage, names))
        deleted += per_model.get(OutboxMessage._meta.label, 0)
    return deleted


def _keep_sent_counts(rows: Sequence[tuple[int, str, int | None]]) -> None:
    """An action's sent count is a lifetime count: before its sent mails leave the
    outbox, they are added to the action's purged count, in the deleting transaction
    (so a list page sees either the mails or the count, never both or neither)."""
    # The model behind the mail's foreign key: the outbox sits below the actions app and
    # does not import it.
    action_model = OutboxMessage._meta.get_field("action").related_model
    per_action = Counter(
        action_id for _pk, status, action_id in rows if status == Status.SENT and action_id
    )
    by_count: dict[int, list[int]] = {}
    for action_id, count in per_action.items():
        by_count.setdefault(count, []).append(action_id)
    for count, action_ids in sorted(by_count.items()):
        action_model._default_manager.filter(pk__in=sorted(action_ids)).update(
            purged_sent_count=F("purged_sent_count") + count
        )


def _delete_files(storage: Storage, names: list[str]) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError as exc:
            logger.warning(
                "Retention: could not delete a stored attachment (%s)", exc.__class__.__name__
            )
