import datetime

import pytest
import time_machine
from celery.schedules import crontab
from django.db import connection
from django.test.utils import CaptureQueriesContext

from maillog import retention
from maillog.models import AuditAction, Category, Level, LogEntry
from maillog.services import log_event
from maillog.tasks import purge

NOW = datetime.datetime(2026, 6, 1, 3, 0, tzinfo=datetime.UTC)


@pytest.fixture
def short_retention(settings):
    settings.CALMAIL_LOG_RETENTION_DAYS = {"audit": 10, "delivery": 5, "debug": 2, "default": 7}


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
def test_purge_task_deletes_old_log_entries(short_retention):
    entry("old", 8, category=Category.SCHEDULER)
    entry("new", 1, category=Category.SCHEDULER)

    with time_machine.travel(NOW, tick=False):
        result = purge()

    assert result == {"audit": 0, "debug": 0, "delivery": 0, "default": 1}
    assert list(LogEntry.objects.values_list("params__x", flat=True)) == ["new"]


def test_both_retentions_run_nightly_from_celery_beat(settings):
    from calmail.celery import app

    app.loader.import_default_modules()
    schedules = [settings.CELERY_BEAT_SCHEDULE[key] for key in ("maillog-purge", "mailbox-purge")]

    assert [(s["task"], s["task"] in app.tasks, s["schedule"]) for s in schedules] == [
        ("maillog.purge", True, crontab(hour=3, minute=17)),
        ("mailbox.purge", True, crontab(hour=3, minute=17)),
    ]


def test_retention_defaults(settings):
    from calmail import settings as project_settings

    assert (
        project_settings.CALMAIL_LOG_RETENTION_DAYS,
        project_settings.CALMAIL_OUTBOX_RETENTION_DAYS,
    ) == ({"audit": 365, "delivery": 90, "debug": 30, "default": 180}, 180)
