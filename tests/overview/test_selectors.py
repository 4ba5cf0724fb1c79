"""The overview's figures: periods and buckets in local time, visibility, attention, runs."""

import datetime as dt

import pytest
import time_machine

from actions.models import ActionRun, RunStatus, Trigger
from mailbox.models import OutboxMessage, Status
from maillog.models import Category, Level
from maillog.services import TRANSPORT_CHECK_MESSAGES, log_event
from overview import selectors
from tests.factories import DeliveryAttemptFactory, OutboxMessageFactory, SmtpConfigurationFactory
from tests.overview.conftest import berlin

# 00:30 in Berlin on 11 June; in UTC it is still 10 June: "today" must be Berlin's.
NOW = dt.datetime(2026, 6, 10, 22, 30, tzinfo=dt.UTC)


def mail(created_at, **values) -> OutboxMessage:
    message = OutboxMessageFactory(**values)
    OutboxMessage.objects.filter(pk=message.pk).update(created_at=created_at)
    return message


@pytest.mark.django_db
def test_mail_figures_count_local_days_per_status(admin):
    mail(berlin(2026, 6, 11, 0, 10), status=Status.SENT)  # today (Berlin), 10 June in UTC
    mail(berlin(2026, 6, 10, 23, 50), status=Status.SENT)  # yesterday: 7 and 30 days
    mail(berlin(2026, 6, 5, 0, 0), status=Status.FAILED)  # first day of the 7
    mail(berlin(2026, 6, 4, 23, 59), status=Status.FAILED)  # 8 days ago: 30 days only
    mail(berlin(2026, 5, 12, 23, 59), status=Status.QUEUED)  # 31 days ago: none
    mail(berlin(2026, 6, 10, 21), status=Status.DEFERRED)  # waiting for a retry

    with time_machine.travel(NOW, tick=False):
        figures = selectors.overview(user=admin).mails

    assert (
        figures.by_status[Status.SENT],
        figures.by_status[Status.FAILED],
        figures.by_status[Status.QUEUED],
        figures.totals,
        figures.deferred,
    ) == (
        {"today": 1, "week": 2, "month": 2},
        {"today": 0, "week": 1, "month": 2},
        {"today": 0, "week": 0, "month": 0},
        {"today": 1, "week": 4, "month": 5},
        1,
    )


@pytest.mark.django_db
def test_periods_start_at_local_midnight():
    spans = selectors.periods(NOW, selectors.zone())

    assert [(s.key, s.first_day, s.start) for s in spans] == [
        ("today", dt.date(2026, 6, 11), berlin(2026, 6, 11)),
        ("week", dt.date(2026, 6, 5), berlin(2026, 6, 5)),
        ("month", dt.date(2026, 5, 13), berlin(2026, 5, 13)),
    ]


@pytest.mark.django_db
def test_traffic_counts_sent_and_failed_per_local_hour_and_day_per_configuration(admin):
    main = SmtpConfigurationFactory(name="Hauptserver")
    news = SmtpConfigurationFactory(name="Newsletter")
    sent_at = berlin(2026, 6, 11, 0, 20)  # this hour, today
    for _ in range(2):
        mail(sent_at, status=Status.SENT, sent_at=sent_at, smtp_configuration=main)
    old = berlin(2026, 6, 8, 9, 15)  # 3 days ago: in the days, not in the 48 hours
    mail(old, status=Status.SENT, sent_at=old, smtp_configuration=news)
    failed = mail(old, status=Status.FAILED, smtp_configuration=main)
    DeliveryAttemptFactory(message=failed, outcome="deferred", started_at=old)
    DeliveryAttemptFactory(message=failed, outcome="failed", started_at=berlin(2026, 6, 10, 23, 5))

    with time_machine.travel(NOW, tick=False):
        traffic = selectors.overview(user=admin).traffic

    days = {s.name: (s.sent, s.failed) for s in traffic.per_day}
    hours = {s.name: (s.sent, s.failed) for s in traffic.per_hour}
    assert (traffic.days[0], traffic.days[-1], len(traffic.hours)) == (
        dt.date(2026, 5, 13),
        dt.date(2026, 6, 11),
        48,
    )
    assert traffic.hours[-1] == berlin(2026, 6, 11, 0)
    assert days == {
        "Hauptserver": ({dt.date(2026, 6, 11): 2}, {dt.date(2026, 6, 10): 1}),
        "Newsletter": ({dt.date(2026, 6, 8): 1}, {}),
    }
    assert hours == {
        "Hauptserver": (
            {berlin(2026, 6, 11, 0).astimezone(dt.UTC): 2},
            {berlin(2026, 6, 10, 23).astimezone(dt.UTC): 1},
        ),
    }


@pytest.mark.django_db
def test_viewer_figures_are_their_teams_only(viewer, team, other_team):
    viewer.groups.add(team)
    today = berlin(2026, 6, 11, 0, 5)
    ours = mail(today, status=Status.FAILED, owner_group=team)
    DeliveryAttemptFactory(message=ours, outcome="failed", started_at=today)
    theirs = mail(today, status=Status.FAILED, owner_group=other_team)
    DeliveryAttemptFactory(message=theirs, outcome="failed", started_at=today)
    mail(today, status=Status.SENT, sent_at=today, owner_group=other_team)
    mail(today, status=Status.DEFERRED, owner_group=other_team)

    with time_machine.travel(NOW, tick=False):
        data = selectors.overview(user=viewer)

    assert (data.mails.totals, data.mails.deferred) == (
        {"today": 1, "week": 1, "month": 1},
        0,
    )
    assert [(s.sent, s.failed) for s in data.traffic.per_day] == [({}, {dt.date(2026, 6, 11): 1})]


@pytest.mark.django_db
def test_actions_needing_attention_are_those_whose_last_finished_run_went_wrong(admin, make_action):
    fine = make_action(description="Gut")
    skipped = make_action(description="Übersprungen")
    failed = make_action(description="Fehlgeschlagen")
    recovered = make_action(description="Wieder gut")

    def run(action, day, **values):
        return ActionRun.objects.create(
            action=action, slot=berlin(2026, 6, day, 7), trigger=Trigger.SCHEDULE, **values
        )

    run(fine, 9, status=RunStatus.DONE)
    run(fine, 10, status=RunStatus.PENDING)  # not finished: the last finished one counts
    run(skipped, 10, status=RunStatus.DONE, skipped_count=2)
    run(failed, 10, status=RunStatus.FAILED)
    run(recovered, 9, status=RunStatus.FAILED)
    run(recovered, 10, status=RunStatus.DONE)

    problems = selectors.overview(user=admin).problem_runs

    assert sorted(r.action.description for r in problems) == ["Fehlgeschlagen", "Übersprungen"]


@pytest.mark.django_db
def test_actions_needing_attention_only_of_the_viewers_teams(viewer, team, make_action, other_team):
    viewer.groups.add(team)
    ours = make_action(description="Unsere", group=team)
    theirs = make_action(description="Fremde", group=other_team)
    for action in (ours, theirs):
        ActionRun.objects.create(
            action=action, slot=berlin(2026, 6, 10, 7), trigger="schedule", status="failed"
        )

    problems = selectors.overview(user=viewer).problem_runs

    assert [r.action.description for r in problems] == ["Unsere"]


@pytest.mark.django_db
def test_configurations_needing_attention_by_last_test_and_last_delivery(admin):
    healthy = SmtpConfigurationFactory(name="A gesund")
    test_failed = SmtpConfigurationFactory(name="B Test fehlgeschlagen")
    test_recovered = SmtpConfigurationFactory(name="C Test wieder gut")
    delivery_failed = SmtpConfigurationFactory(name="D Zustellung fehlgeschlagen")

    def test(configuration, ok, minute):
        log_event(
            category=Category.CONFIGURATION,
            level=Level.INFO if ok else Level.WARNING,
            message=TRANSPORT_CHECK_MESSAGES[("test", ok)],
            params={"object": configuration.name},
            obj=configuration,
            time=berlin(2026, 6, 10, 12, minute),
        )

    test(healthy, True, 0)
    test(test_failed, True, 0)
    test(test_failed, False, 1)
    test(test_recovered, False, 0)
    test(test_recovered, True, 1)
    for configuration, outcomes in (
        (healthy, ["failed", "sent"]),
        (delivery_failed, ["sent", "deferred"]),
    ):
        message = OutboxMessageFactory(smtp_configuration=configuration)
        for minute, outcome in enumerate(outcomes):
            DeliveryAttemptFactory(
                message=message, outcome=outcome, started_at=berlin(2026, 6, 10, 13, minute)
            )

    found = selectors.overview(user=admin).problem_configurations

    assert [
        (h.configuration.name, h.test_failed_at, h.delivery_outcome, h.delivery_at) for h in found
    ] == [
        ("B Test fehlgeschlagen", berlin(2026, 6, 10, 12, 1), "", None),
        ("D Zustellung fehlgeschlagen", None, "deferred", berlin(2026, 6, 10, 13, 1)),
    ]


@pytest.mark.django_db
def test_calserver_sync_has_no_problems_until_a_sync_exists(admin):
    assert selectors.calserver_sync_problems(user=admin) == []


@pytest.mark.django_db
def test_next_runs_merge_the_actions_slots_in_time_order(admin, make_action, team):
    morning = make_action(
        description="Morgens", time_of_day=dt.time(7), next_due_at=berlin(2026, 6, 11, 7)
    )
    noon = make_action(
        description="Mittags", time_of_day=dt.time(12), next_due_at=berlin(2026, 6, 11, 12)
    )
    make_action(description="Entwurf", published=False, next_due_at=berlin(2026, 6, 11, 8))
    make_action(description="Später", next_due_at=berlin(2026, 6, 20, 7))

    runs = selectors.overview(user=admin, now=NOW).next_runs

    assert [(r.when, r.action.pk) for r in runs] == [
        (berlin(2026, 6, day, hour), action.pk)
        for day in range(11, 16)
        for hour, action in ((7, morning), (12, noon))
    ]
