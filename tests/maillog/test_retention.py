import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from mailbox.models import OutboxAttachment, OutboxMessage
from maillog import retention
from maillog.models import AuditAction, Category, Level, LogEntry
from maillog.services import log_event
from maillog.tasks import purge
from tests.factories import OutboxAttachmentFactory, OutboxMessageFactory

NOW = datetime.datetime(2026, 6, 1, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def short_retention(settings):
    settings.CALMAIL_LOG_RETENTION_DAYS = {"audit": 10, "delivery": 5, "debug": 2, "default": 7}
    settings.CALMAIL_OUTBOX_RETENTION_DAYS = 30


def entry(label: str, days_old: float, **kwargs) -> LogEntry:
    kwargs.setdefault("category", Category.CONFIGURATION)
    return log_event(
        message="%(x)s",
        params={"x": label},
        actor=None,
        time=NOW - datetime.timedelta(days=days_old),
        **kwargs,
    )


def deletes(queries) -> int:
    return sum(1 for query in queries if query["sql"].startswith("DELETE"))


@pytest.mark.django_db
def test_purge_log_deletes_exactly_what_is_older_than_its_category_setting(short_retention):
    # Just inside and just outside each period.
    entry("audit-keep", 9.9, audit_action=AuditAction.UPDATED, level=Level.DEBUG)
    entry("audit-drop", 10.1, audit_action=AuditAction.UPDATED)
    entry("debug-keep", 1.9, level=Level.DEBUG, category=Category.DELIVERY)
    entry("debug-drop", 2.1, level=Level.DEBUG)
    entry("delivery-keep", 4.9, category=Category.DELIVERY)
    entry("delivery-drop", 5.1, category=Category.DELIVERY, level=Level.ERROR)
    entry("default-keep", 6.9, category=Category.SCHEDULER)
    entry("default-drop", 7.1, category=Category.SECURITY)

    result = retention.purge_log(now=NOW)

    assert sorted(LogEntry.objects.values_list("params__x", flat=True)) == [
        "audit-keep",
        "debug-keep",
        "default-keep",
        "delivery-keep",
    ]
    assert result == {"audit": 1, "debug": 1, "delivery": 1, "default": 1}


@pytest.mark.django_db
def test_purge_log_deletes_in_batches_of_the_given_size(short_retention):
    for number in range(7):
        entry(f"old-{number}", 30)
    entry("new", 0)

    with CaptureQueriesContext(connection) as queries:
        result = retention.purge_log(now=NOW, batch_size=3)

    assert (result["default"], deletes(queries.captured_queries)) == (7, 3)
    assert list(LogEntry.objects.values_list("params__x", flat=True)) == ["new"]


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
def test_purge_task_runs_both_retentions(short_retention, django_capture_on_commit_callbacks):
    log_event(
        message="%(x)s",
        params={"x": "alt"},
        category=Category.SCHEDULER,
        actor=None,
        time=timezone.now() - datetime.timedelta(days=8),
    )
    message = OutboxMessageFactory(
        status="sent", sent_at=timezone.now() - datetime.timedelta(days=40)
    )
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=40)
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = purge()

    assert result == {
        "log_entries": {"audit": 0, "debug": 0, "delivery": 0, "default": 1},
        "outbox_messages": 1,
    }


def test_purge_runs_daily_from_celery_beat(settings):
    from calmail.celery import app

    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE["maillog-purge"]

    assert (schedule["task"], "maillog.purge" in app.tasks) == ("maillog.purge", True)


def test_retention_defaults(settings):
    from calmail import settings as project_settings

    assert (
        project_settings.CALMAIL_LOG_RETENTION_DAYS,
        project_settings.CALMAIL_OUTBOX_RETENTION_DAYS,
    ) == ({"audit": 365, "delivery": 90, "debug": 30, "default": 180}, 180)
