import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from actions import runs, tasks
from actions.models import Action, ActionRun, RunStatus, Trigger
from actions.selectors import action_list, sent_count
from calmail.celery import app as celery_app
from mailbox import retention
from mailbox.models import OutboxMessage, Status
from tests.factories import (
    CustomerFactory,
    InstrumentFactory,
    MailTemplateFactory,
    OutboxMessageFactory,
)
from tests.integration.conftest import celery_publishing_to


def overdue_customer(number):
    customer = CustomerFactory(number=number, emails=[f"labor@kunde{number}.example"])
    InstrumentFactory(
        customer=customer, last_calibration=timezone.localdate() - dt.timedelta(days=400)
    )
    return customer


def test_run_queues_one_mail_per_customer_with_their_report(make_action, admin):
    customers = [overdue_customer(n) for n in ("30001", "30002", "30003")]
    action = make_action(recipients=[f"customer:{c.pk}" for c in customers])

    run = runs.action_run_now(action=action)
    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    mails = OutboxMessage.objects.filter(action=action).order_by("recipient")
    assert (run.status, run.trigger, run.queued_count, run.skipped_count) == (
        RunStatus.DONE,
        Trigger.MANUAL,
        3,
        0,
    )
    assert [m.to for m in mails] == [
        ["labor@kunde30001.example"],
        ["labor@kunde30002.example"],
        ["labor@kunde30003.example"],
    ]
    assert [(m.source, m.source_label, m.attachment_count, m.owner_group) for m in mails] == [
        ("action", "Monatliche Erinnerung", 1, action.group)
    ] * 3
    assert all(m.attachments.get().filename.endswith(".xlsx") for m in mails)


def test_run_executed_twice_never_duplicates_mail(make_action):
    customer = overdue_customer("30011")
    action = make_action(recipients=[f"customer:{customer.pk}"])
    run = runs.action_run_now(action=action)

    runs.run_execute(run_id=run.pk)
    ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # as after a crash
    runs.run_execute(run_id=run.pk)

    assert OutboxMessage.objects.filter(action=action).count() == 1


def test_run_skips_recipient_without_attachment(make_action):
    empty = CustomerFactory(number="30021", emails=["leer@kunde.example"])
    due = overdue_customer("30022")
    template = MailTemplateFactory(empty_attachment_allowed=False)
    action = make_action(
        template=template, recipients=[f"customer:{empty.pk}", f"customer:{due.pk}"]
    )
    run = runs.action_run_now(action=action)

    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.queued_count, run.skipped_count) == (1, 1)
    assert [s["recipient"] for s in run.skipped] == ["leer@kunde.example"]
    assert "without an attachment" in run.skipped[0]["reason"]


def test_run_sends_without_attachment_when_allowed(make_action):
    empty = CustomerFactory(number="30031", emails=["leer@kunde.example"])
    template = MailTemplateFactory(empty_attachment_allowed=False)
    action = make_action(
        template=template, recipients=[f"customer:{empty.pk}"], send_without_attachments=True
    )
    run = runs.action_run_now(action=action)

    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.queued_count, run.skipped_count) == (1, 0)
    assert OutboxMessage.objects.get(action=action).attachment_count == 0


def test_scheduled_run_of_unpublished_action_is_cancelled(make_action):
    action = make_action(published=False)
    run = ActionRun.objects.create(action=action, slot=timezone.now(), trigger=Trigger.SCHEDULE)

    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert OutboxMessage.objects.count() == 0


def test_sent_count_counts_sent_mails_of_action(make_action, admin):
    customer = overdue_customer("30041")
    action = make_action(recipients=[f"customer:{customer.pk}", "ops@example.com"])
    run = runs.action_run_now(action=action)
    runs.run_execute(run_id=run.pk)

    OutboxMessage.objects.filter(action=action, recipient__contains="kunde").update(
        status=Status.SENT
    )

    assert sent_count(action) == 1
    assert [a.sent_count for a in action_list(user=admin)] == [1]


def test_run_is_written_to_the_log_with_skip_reasons(make_action):
    from maillog.models import LogEntry

    empty = CustomerFactory(number="30051", emails=["leer@kunde.example"])
    template = MailTemplateFactory(empty_attachment_allowed=False)
    action = make_action(template=template, recipients=[f"customer:{empty.pk}"])
    run = runs.action_run_now(action=action)

    runs.run_execute(run_id=run.pk)

    started, finished = LogEntry.objects.filter(category="scheduler", object_id=action.pk).order_by(
        "id"
    )
    assert (started.level, started.params["trigger"], started.params["recipients"]) == (
        "info",
        "manual",
        1,
    )
    assert started.message.startswith("Run of %(action)s started")
    assert (finished.level, finished.params["queued"], finished.params["skipped"]) == (
        "warning",
        0,
        1,
    )
    assert [s["recipient"] for s in finished.details["skipped"]] == ["leer@kunde.example"]


def test_sent_count_unchanged_when_retention_deletes_sent_mails(
    make_action, admin, settings, django_capture_on_commit_callbacks
):
    settings.CALMAIL_OUTBOX_RETENTION_DAYS = 30
    settings.CALMAIL_RECORD_RETENTION_YEARS = 1
    customers = [overdue_customer(n) for n in ("30051", "30052", "30053")]
    action = make_action(recipients=[f"customer:{c.pk}" for c in customers])
    other = make_action(description="Andere", recipients=[f"customer:{customers[0].pk}"])
    for each in (action, other):
        runs.run_execute(run_id=runs.action_run_now(action=each).pk)
    OutboxMessage.objects.update(status=Status.SENT, sent_at=timezone.now())
    old = timezone.now() - dt.timedelta(days=400)
    month_old = timezone.now() - dt.timedelta(days=31)
    # Two of the action's sent mails and the other action's one are past the record
    # retention; the action's third only past the content retention.
    purged = list(OutboxMessage.objects.filter(action=action).order_by("pk")[:2]) + list(
        OutboxMessage.objects.filter(action=other)
    )
    OutboxMessage.objects.filter(pk__in=[m.pk for m in purged]).update(sent_at=old, created_at=old)
    OutboxMessage.objects.exclude(pk__in=[m.pk for m in purged]).update(
        sent_at=month_old, created_at=month_old
    )
    before = [(a.description, a.sent_count) for a in action_list(user=admin)]

    with django_capture_on_commit_callbacks(execute=True):
        result = retention.purge_outbox(batch_size=2)

    action.refresh_from_db()
    # Content goes first (all four are past 30 days), then the three records.
    assert (result.contents, result.records) == (4, 3)
    assert (OutboxMessage.objects.count(), action.purged_sent_count) == (1, 2)
    assert before == [("Andere", 1), ("Monatliche Erinnerung", 3)]
    assert [(a.description, a.sent_count) for a in action_list(user=admin)] == before
    assert (sent_count(action), sent_count(other)) == (3, 1)


def test_sent_count_filter_and_order_include_purged_mails(make_action, admin):
    few = make_action(description="Wenige")
    many = make_action(description="Viele")
    Action.objects.filter(pk=many.pk).update(purged_sent_count=5)
    OutboxMessageFactory.create_batch(2, action=few, status=Status.SENT)

    ordered = [a.description for a in action_list(user=admin).order_by("-sent_count")]
    at_least_three = [a.description for a in action_list(user=admin).filter(sent_count__gte=3)]

    assert (ordered, at_least_three) == (["Viele", "Wenige"], ["Viele"])


def test_run_reads_the_template_texts_once_not_per_recipient(make_action):
    customers = [overdue_customer(n) for n in ("30061", "30062", "30063")]
    action = make_action(recipients=[f"customer:{c.pk}" for c in customers])
    run = runs.action_run_now(action=action)

    with CaptureQueriesContext(connection) as queries:
        runs.run_execute(run_id=run.pk)

    texts = [q for q in queries if "templates_app_mailtemplatetranslation" in q["sql"]]
    assert (len(texts), OutboxMessage.objects.filter(action=action).count()) == (1, 3)


def test_run_fills_customer_placeholders_without_a_query_per_recipient(make_action):
    customers = [overdue_customer(n) for n in ("30071", "30072", "30073")]
    template = MailTemplateFactory(
        texts={"de": {"subject": "{{ customer.number }} {{ customer.name }}"}}
    )
    action = make_action(template=template, recipients=[f"customer:{c.pk}" for c in customers])
    run = runs.action_run_now(action=action)

    with CaptureQueriesContext(connection) as queries:
        runs.run_execute(run_id=run.pk)

    one_customer_reads = [
        q["sql"]
        for q in queries
        if 'FROM "inventory_customer"' in q["sql"] and "LIMIT 1" in q["sql"]
    ]
    subjects = OutboxMessage.objects.filter(action=action).order_by("subject")
    assert [m.subject for m in subjects] == [f"{c.number} {c.name}" for c in customers]
    assert one_customer_reads == []


def test_run_of_action_without_team_queues_mails_without_owner_group(
    make_action, admin, power_user, team
):
    from mailbox.selectors import outbox_message_list
    from maillog.models import LogEntry

    power_user.groups.add(team)
    customer = overdue_customer("30091")
    action = make_action(group=None, recipients=[f"customer:{customer.pk}"])
    run = runs.action_run_now(action=action)

    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.queued_count, run.skipped_count) == (RunStatus.DONE, 1, 0)
    assert list(OutboxMessage.objects.values_list("recipient", "owner_group", "action")) == [
        ("labor@kunde30091.example", None, action.pk)
    ]
    entries = LogEntry.objects.filter(object_id=action.pk, category="scheduler")
    assert [entry.group_id for entry in entries] == [None, None]
    # Only administrators see the mails of an action without a team.
    assert outbox_message_list(user=admin).count() == 1
    assert outbox_message_list(user=power_user).count() == 0


def test_run_of_a_template_without_attachment_always_sends(make_action):
    """docs/design.md 5.6.1: "send without attachments" only concerns templates with a report."""
    template = MailTemplateFactory(add_attachment="none")
    action = make_action(template=template, recipients=["einkauf@muster.example"])

    run = runs.action_run_now(action=action)
    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.queued_count, run.skipped_count) == (1, 0)
    assert list(OutboxMessage.objects.values_list("to", flat=True)) == [["einkauf@muster.example"]]


@pytest.fixture
def eager():
    """Tasks dispatched run inline (no broker, no worker)."""
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


@pytest.fixture
def dead_broker():
    """Celery publishes to a Redis port where nothing listens, as during an outage."""
    with celery_publishing_to("redis://127.0.0.1:1/0"):
        yield


def test_run_now_with_the_broker_down_still_creates_the_run(
    make_action, admin, client_for, dead_broker, django_capture_on_commit_callbacks
):
    action = make_action()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(admin).post(reverse("actions:run_now", args=[action.pk]))

    run = ActionRun.objects.get()
    assert (response.url, len(callbacks)) == (reverse("actions:runs", args=[action.pk]), 1)
    assert (run.action, run.trigger, run.status) == (action, Trigger.MANUAL, RunStatus.PENDING)


def test_tick_dispatches_a_run_whose_task_was_lost(
    make_action, eager, django_capture_on_commit_callbacks
):
    """A lost task message never loses the run: the tick sends it again once it has
    waited too long, and a worker executes it."""
    action = make_action()
    lost = ActionRun.objects.create(action=action, slot=timezone.now(), trigger=Trigger.MANUAL)
    recent = ActionRun.objects.create(
        action=action, slot=timezone.now() + dt.timedelta(seconds=1), trigger=Trigger.MANUAL
    )
    ActionRun.objects.filter(pk=lost.pk).update(
        created_at=timezone.now() - dt.timedelta(seconds=runs.RUN_REDISPATCH_SECONDS + 1)
    )

    assert runs.waiting_run_ids() == [lost.pk]
    with django_capture_on_commit_callbacks(execute=True):
        started = tasks.tick()

    assert started == 0

    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == RunStatus.DONE
    assert recent.status == RunStatus.PENDING


def test_run_records_a_template_that_renders_too_much_as_failed(make_action):
    """The scan's 36-byte template that rendered 30 MB: refused per recipient, nothing queued."""
    template = MailTemplateFactory(
        add_attachment="none",
        default_language="en",
        texts={"en": {"subject": "Hello", "body_html": '{{ recipient.email|ljust:"30000000" }}'}},
    )
    action = make_action(template=template, recipients=["einkauf@muster.example"])

    run = runs.action_run_now(action=action)
    runs.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.status, run.queued_count, run.failed_count, run.skipped_count) == (
        RunStatus.DONE,
        0,
        1,
        0,
    )
    assert run.skipped == [
        {
            "recipient": "einkauf@muster.example",
            "reason": "Line 1: the width 30000000 in “ljust” is larger than the allowed 200.",
        }
    ]
    assert not OutboxMessage.objects.exists()
