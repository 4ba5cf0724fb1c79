import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from actions import services, tasks
from actions.models import Action, ActionRun, RunStatus, Trigger
from actions.scheduler import tick
from tests.actions.conftest import berlin
from tests.factories import MailTemplateFactory, SmtpConfigurationFactory


def runs_of(action):
    return [
        (run.slot.astimezone(berlin(2026, 1, 1).tzinfo), run.trigger, run.status)
        for run in ActionRun.objects.filter(action=action).order_by("slot")
    ]


def test_tick_makes_one_run_for_due_slot(make_action, django_capture_on_commit_callbacks):
    action = make_action(next_due_at=berlin(2026, 6, 1, 7))

    with django_capture_on_commit_callbacks() as callbacks:
        run_ids = tick(now=berlin(2026, 6, 1, 7, 0, 20))
    again = tick(now=berlin(2026, 6, 1, 7, 0, 50))

    action.refresh_from_db()
    assert runs_of(action) == [(berlin(2026, 6, 1, 7), Trigger.SCHEDULE, RunStatus.PENDING)]
    assert again == []
    assert run_ids == list(ActionRun.objects.values_list("pk", flat=True))
    # The scheduler only returns the runs; the task layer dispatches them.
    assert len(callbacks) == 0
    assert action.next_due_at == berlin(2026, 6, 2, 7)


def test_tick_task_dispatches_the_runs_the_scheduler_made(
    make_action, django_capture_on_commit_callbacks
):
    make_action(next_due_at=berlin(2026, 6, 1, 7))

    with (
        time_machine.travel(berlin(2026, 6, 1, 7, 0, 20), tick=False),
        django_capture_on_commit_callbacks() as callbacks,
    ):
        started = tasks.tick()

    assert (started, len(callbacks), ActionRun.objects.count()) == (1, 1, 1)


def test_tick_ignores_actions_not_yet_due(make_action):
    action = make_action(next_due_at=berlin(2026, 6, 1, 7))

    assert tick(now=berlin(2026, 6, 1, 6, 59, 59)) == []
    assert runs_of(action) == []


def test_tick_after_three_days_downtime_catches_up_latest_only(make_action):
    action = make_action(next_due_at=berlin(2026, 6, 1, 7))

    tick(now=berlin(2026, 6, 4, 7, 40))

    assert runs_of(action) == [
        (berlin(2026, 6, 1, 7), Trigger.SCHEDULE, RunStatus.MISSED),
        (berlin(2026, 6, 2, 7), Trigger.SCHEDULE, RunStatus.MISSED),
        (berlin(2026, 6, 3, 7), Trigger.SCHEDULE, RunStatus.MISSED),
        (berlin(2026, 6, 4, 7), Trigger.CATCH_UP, RunStatus.PENDING),
    ]
    action.refresh_from_db()
    assert action.next_due_at == berlin(2026, 6, 5, 7)


def test_tick_after_downtime_beyond_grace_records_missed_only(make_action, settings):
    settings.CALMAIL_CATCHUP_GRACE_SECONDS = 3600
    action = make_action(next_due_at=berlin(2026, 6, 1, 7))

    run_ids = tick(now=berlin(2026, 6, 4, 8, 0, 1))

    assert run_ids == []
    assert [status for _slot, _trigger, status in runs_of(action)] == [RunStatus.MISSED] * 4


def test_tick_caps_recorded_missed_slots(make_action):
    action = make_action(next_due_at=berlin(2026, 1, 1, 7))

    tick(now=berlin(2026, 12, 31, 12))

    runs = runs_of(action)
    assert len(runs) == 100
    assert runs[-1] == (berlin(2026, 12, 31, 7), Trigger.SCHEDULE, RunStatus.MISSED)


def test_tick_drops_unpublished_action_from_due_scan(make_action):
    action = make_action(next_due_at=berlin(2026, 6, 1, 7), published=False)

    assert tick(now=berlin(2026, 6, 1, 7, 1)) == []

    action.refresh_from_db()
    assert action.next_due_at is None
    assert runs_of(action) == []


def test_tick_stops_after_end(make_action):
    action = make_action(next_due_at=berlin(2026, 6, 1, 7), end=berlin(2026, 6, 1, 23))

    tick(now=berlin(2026, 6, 1, 7, 1))

    action.refresh_from_db()
    assert action.next_due_at is None
    assert len(runs_of(action)) == 1


def test_tick_on_spring_forward_runs_at_shifted_instant(make_action):
    action = make_action(time_of_day=dt.time(2, 30), next_due_at=berlin(2026, 3, 28, 2, 30))
    tick(now=berlin(2026, 3, 28, 2, 31))
    action.refresh_from_db()

    assert action.next_due_at == berlin(2026, 3, 29, 3, 30)
    assert tick(now=berlin(2026, 3, 29, 3, 29)) == []
    assert len(tick(now=berlin(2026, 3, 29, 3, 30, 10))) == 1


def test_tick_on_fall_back_runs_once(make_action):
    action = make_action(time_of_day=dt.time(2, 30), next_due_at=berlin(2026, 10, 25, 2, 30))

    first = tick(now=berlin(2026, 10, 25, 2, 30, 10))
    # An hour later the wall clock shows 02:30 again (CET): no second run that day.
    second = tick(now=berlin(2026, 10, 25, 2, 30, 10, fold=1))

    assert len(first) == 1
    assert second == []
    action.refresh_from_db()
    assert action.next_due_at == berlin(2026, 10, 26, 2, 30)


# --- saving never fires a catch-up ----------------------------------------------------------


def values(**overrides):
    from django.contrib.auth.models import Group

    result = {
        "description": "Wöchentlich",
        "days": [],
        "weekdays": [],
        "months": [],
        "time_of_day": dt.time(10),
        "start": berlin(2026, 1, 1),
        "end": None,
        "group": Group.objects.get_or_create(name="Team Nord")[0],
        "published": True,
        "send_without_attachments": False,
        "template": MailTemplateFactory(),
        "smtp_configuration": SmtpConfigurationFactory(),
        "recipients": ["ops@example.com"],
    }
    result.update(overrides)
    return result


def test_edit_after_slot_time_schedules_tomorrow_without_catch_up(db):
    action = services.action_create(values=values(), now=berlin(2026, 6, 1, 9))
    assert action.next_due_at == berlin(2026, 6, 1, 10)

    # No tick ran at 10:00 (say, the scheduler was briefly down); the edit at 10:05 wins.
    services.action_update(
        action=action, values={"description": "Täglich 10 Uhr"}, now=berlin(2026, 6, 1, 10, 5)
    )
    run_ids = tick(now=berlin(2026, 6, 1, 10, 5, 30))

    action.refresh_from_db()
    assert action.next_due_at == berlin(2026, 6, 2, 10)
    assert run_ids == []
    assert ActionRun.objects.count() == 0


def test_unpublish_and_republish_never_fire_catch_up(db):
    action = services.action_create(values=values(), now=berlin(2026, 6, 1, 9))

    services.action_set_published(action=action, published=False, now=berlin(2026, 6, 1, 9, 30))
    assert tick(now=berlin(2026, 6, 1, 10, 0, 10)) == []
    services.action_set_published(action=action, published=True, now=berlin(2026, 6, 1, 10, 20))
    run_ids = tick(now=berlin(2026, 6, 1, 10, 20, 30))

    action.refresh_from_db()
    assert run_ids == []
    assert ActionRun.objects.count() == 0
    assert action.next_due_at == berlin(2026, 6, 2, 10)


def test_create_refuses_rule_that_never_fires(db):
    with pytest.raises(ValidationError) as error:
        services.action_create(values=values(days=[30, 31], months=[2]))

    assert "can never fire" in " ".join(error.value.messages)
    assert Action.objects.count() == 0


def test_create_stores_sorted_rule_lists(db):
    action = services.action_create(
        values=values(days=["last", "15", 1], weekdays=["fri", "mon"], months=["7", 1]),
        now=berlin(2026, 6, 1),
    )

    action.refresh_from_db()
    assert (action.days, action.weekdays, action.months) == ([1, 15, "last"], [0, 4], [1, 7])


def test_duplicate_is_unpublished_copy(db):
    action = services.action_create(values=values(), now=berlin(2026, 6, 1))

    copy = services.action_duplicate(action=action, now=berlin(2026, 6, 1))

    assert copy.description == "Wöchentlich (copy)"
    assert (copy.published, copy.next_due_at) == (False, None)
    assert copy.recipients == action.recipients


def test_template_in_use_cannot_be_deleted(make_action):
    from templates_app.services import mail_template_delete

    action = make_action()

    with pytest.raises(ValidationError) as error:
        mail_template_delete(template=action.template)

    assert "Monatliche Erinnerung" in " ".join(error.value.messages)


def test_missed_slots_are_written_to_the_log(make_action):
    from maillog.models import LogEntry

    action = make_action(next_due_at=berlin(2026, 6, 1, 7))

    tick(now=berlin(2026, 6, 4, 9))

    entry = LogEntry.objects.get(category="scheduler")
    assert (entry.level, entry.object_id, entry.group_id) == ("warning", action.pk, action.group_id)
    assert entry.params["count"] == 4
    assert len(entry.details["slots"]) == 4
