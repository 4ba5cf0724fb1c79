import datetime as dt

from django.utils import timezone

from actions import services
from actions.models import ActionRun, RunStatus, Trigger
from actions.selectors import action_list, sent_count
from mailbox.models import OutboxMessage, Status
from tests.factories import CustomerFactory, InstrumentFactory, MailTemplateFactory


def overdue_customer(number):
    customer = CustomerFactory(number=number, emails=[f"labor@kunde{number}.example"])
    InstrumentFactory(
        customer=customer, last_calibration=timezone.localdate() - dt.timedelta(days=400)
    )
    return customer


def test_run_queues_one_mail_per_customer_with_their_report(make_action, admin):
    customers = [overdue_customer(n) for n in ("30001", "30002", "30003")]
    action = make_action(recipients=[f"customer:{c.pk}" for c in customers])

    run = services.action_run_now(action=action)
    services.run_execute(run_id=run.pk)

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
    run = services.action_run_now(action=action)

    services.run_execute(run_id=run.pk)
    ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # as after a crash
    services.run_execute(run_id=run.pk)

    assert OutboxMessage.objects.filter(action=action).count() == 1


def test_run_skips_recipient_without_attachment(make_action):
    empty = CustomerFactory(number="30021", emails=["leer@kunde.example"])
    due = overdue_customer("30022")
    template = MailTemplateFactory(empty_attachment_allowed=False)
    action = make_action(
        template=template, recipients=[f"customer:{empty.pk}", f"customer:{due.pk}"]
    )
    run = services.action_run_now(action=action)

    services.run_execute(run_id=run.pk)

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
    run = services.action_run_now(action=action)

    services.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert (run.queued_count, run.skipped_count) == (1, 0)
    assert OutboxMessage.objects.get(action=action).attachment_count == 0


def test_scheduled_run_of_unpublished_action_is_cancelled(make_action):
    action = make_action(published=False)
    run = ActionRun.objects.create(action=action, slot=timezone.now(), trigger=Trigger.SCHEDULE)

    services.run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert OutboxMessage.objects.count() == 0


def test_sent_count_counts_sent_mails_of_action(make_action, admin):
    customer = overdue_customer("30041")
    action = make_action(recipients=[f"customer:{customer.pk}", "ops@example.com"])
    run = services.action_run_now(action=action)
    services.run_execute(run_id=run.pk)

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
    run = services.action_run_now(action=action)

    services.run_execute(run_id=run.pk)

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
