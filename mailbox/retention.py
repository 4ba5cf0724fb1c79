"""Retention of the outbox: old finished mail is deleted in small batches.

Each batch is one short transaction, so the purge never holds locks on the outbox for
long and runs beside normal traffic. Ids are selected first (through the time indexes),
then deleted by primary key.
"""

import datetime
import logging
from collections import Counter
from collections.abc import Sequence
from functools import partial

from django.conf import settings
from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mailbox.models import OutboxAttachment, OutboxMessage, Status

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
FINISHED = (Status.SENT, Status.FAILED, Status.CANCELLED)


def purge_outbox(*, now: datetime.datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Delete finished outbox mail (sent, failed, cancelled) whose last activity is older
    than CALMAIL_OUTBOX_RETENTION_DAYS, with attempts, attachments and their files.

    As mailbox.services.message_delete: a mail being sent is never touched, and files go
    only after the rows are surely gone (on commit).
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(days=settings.CALMAIL_OUTBOX_RETENTION_DAYS)
    queryset = OutboxMessage.objects.filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True),
        status__in=FINISHED,
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
                .filter(pk__in=ids, status__in=FINISHED)
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
            transaction.on_commit(partial(_delete_files, storage, names))
        deleted += per_model.get(OutboxMessage._meta.label, 0)


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
