import datetime

import pytest
from django.utils import timezone

from mailbox import retention
from mailbox.models import OutboxAttachment, OutboxMessage
from mailbox.tasks import purge
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory

NOW = datetime.datetime(2026, 6, 1, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def short_retention(settings):
    settings.CALMAIL_OUTBOX_RETENTION_DAYS = 30


@pytest.mark.django_db
def test_purge_outbox_deletes_old_finished_mail_with_files_after_commit(
    short_retention, media_root, django_capture_on_commit_callbacks
):
    old = NOW - datetime.timedelta(days=31)
    recent = NOW - datetime.timedelta(days=29)
    old_sent = OutboxAttachmentFactory(message__status="sent", message__sent_at=old)
    old_failed = OutboxMessageFactory(status="failed")
    old_cancelled = OutboxMessageFactory(status="cancelled")
    old_queued = OutboxMessageFactory(status="queued")
    resent_recently = OutboxMessageFactory(status="sent", sent_at=recent)
    new_sent = OutboxMessageFactory(status="sent", sent_at=recent)
    OutboxMessage.objects.exclude(pk=new_sent.pk).update(created_at=old)
    OutboxMessage.objects.filter(pk=new_sent.pk).update(created_at=recent)
    path = media_root / old_sent.file.name

    with django_capture_on_commit_callbacks(execute=True):
        file_there_before_commit = path.exists()
        deleted = retention.purge_outbox(now=NOW, batch_size=2)

    assert deleted == 3
    assert sorted(OutboxMessage.objects.values_list("pk", flat=True)) == sorted(
        [old_queued.pk, resent_recently.pk, new_sent.pk]
    )
    assert (file_there_before_commit, path.exists(), OutboxAttachment.objects.count()) == (
        True,
        False,
        0,
    )
    assert {old_failed.pk, old_cancelled.pk} & set(
        OutboxMessage.objects.values_list("pk", flat=True)
    ) == set()


@pytest.mark.django_db
def test_purge_task_deletes_old_finished_mail(short_retention, django_capture_on_commit_callbacks):
    old = OutboxMessageFactory(status="sent", sent_at=timezone.now() - datetime.timedelta(days=40))
    OutboxMessage.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=40)
    )
    recent = OutboxMessageFactory(status="sent", sent_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        deleted = purge()

    assert (deleted, list(OutboxMessage.objects.values_list("pk", flat=True))) == (1, [recent.pk])
