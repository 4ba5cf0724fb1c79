"""Reads of the overview: the outbox in figures, what needs attention, the next runs.

Everyone sees the figures of the mails they may see (mailbox.selectors.outbox_message_list:
administrators all, others their teams' and their own), and the actions they may see
(actions.selectors.visible_actions). Every figure is one aggregate over an indexed time
range, so the page's cost follows the mails of the last 30 days, not the size of the
outbox: the status counts read the creation-time index, the sent mails per hour the
sent-time index (both index-only: they carry status, configuration, team and creator),
the failures per hour the partial index of failed attempts.

Days and hours are the installation's (settings.TIME_ZONE), like every time shown.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncHour
from django.utils import timezone

from actions.models import Action, ActionRun, RunStatus
from actions.schedule import next_slots
from actions.selectors import visible_actions
from actions.services import rule_of
from calserver.selectors import failing_sync_warning
from mailbox.models import AttemptOutcome, DeliveryAttempt, OutboxMessage, Status
from mailbox.selectors import outbox_message_list
from maillog.models import LogEntry
from maillog.services import TRANSPORT_CHECK_MESSAGES
from smtpconfig.models import SmtpConfiguration

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# The periods of the status figures: today, and the last 7 and 30 days including today.
PERIOD_DAYS = {"today": 1, "week": 7, "month": 30}
CHART_DAYS = 30
CHART_HOURS = 48
NEXT_RUNS = 10
# An action's last run "needs attention" when it ended like this or left recipients out.
PROBLEM_RUN_STATUSES = (RunStatus.FAILED, RunStatus.MISSED)
FINISHED_RUN_STATUSES = (RunStatus.DONE, RunStatus.FAILED, RunStatus.MISSED)
FAILED_TEST_MESSAGES = [
    message for (_kind, ok), message in TRANSPORT_CHECK_MESSAGES.items() if not ok
]


def zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz)


@dataclass(frozen=True)
class Period:
    key: str
    first_day: dt.date  # the outbox filter's created_at_min: the list shows the same mails
    start: dt.datetime


def periods(now: dt.datetime, tz: ZoneInfo) -> list[Period]:
    today = now.astimezone(tz).date()
    found = []
    for key, days in PERIOD_DAYS.items():
        first = today - dt.timedelta(days=days - 1)
        found.append(Period(key=key, first_day=first, start=local_midnight(first, tz)))
    return found


@dataclass
class MailFigures:
    # status -> period key -> mails created in the period that now have the status
    by_status: dict[str, dict[str, int]]
    totals: dict[str, int]

    @property
    def failed(self) -> int:
        return self.by_status[Status.FAILED]["month"]

    @property
    def deferred(self) -> int:
        # Of the 30 days: a retry waits hours at most (CALMAIL_RETRY_BACKOFF), and a count
        # over all time would read every deferred mail's row.
        return self.by_status[Status.DEFERRED]["month"]


def mail_figures(*, scope: QuerySet[OutboxMessage], now: dt.datetime, tz: ZoneInfo) -> MailFigures:
    """Mails per status created today, in 7 and in 30 days: one pass over the 30 days."""
    spans = periods(now, tz)
    widest = min(span.start for span in spans)
    rows = (
        scope.filter(created_at__gte=widest)
        .order_by()
        .values("status")
        .annotate(
            **{
                span.key: Count("pk", filter=Q(created_at__gte=span.start))
                if span.start > widest
                else Count("pk")
                for span in spans
            }
        )
    )
    by_status = {status: dict.fromkeys(PERIOD_DAYS, 0) for status in Status.values}
    # django-stubs types values() rows by the model's fields and cannot see the annotations.
    for row in rows.values_list("status", *PERIOD_DAYS):
        by_status[row[0]] = dict(zip(PERIOD_DAYS, row[1:], strict=True))
    totals = {key: sum(counts[key] for counts in by_status.values()) for key in PERIOD_DAYS}
    return MailFigures(by_status=by_status, totals=totals)


@dataclass
class Series:
    """Sent and failed mails of one SMTP configuration per bucket (day or hour)."""

    configuration_id: int
    name: str = ""
    # by local date (per day) or by the hour's start in UTC (per hour)
    sent: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)


@dataclass
class Traffic:
    days: list[dt.date]
    hours: list[dt.datetime]  # the start of each hour, aware, in tz
    per_day: list[Series]
    per_hour: list[Series]


def hour_buckets(now: dt.datetime, tz: ZoneInfo) -> list[dt.datetime]:
    # Back from the current hour in steps of real hours (UTC), shown local: the day the
    # clocks change has 23 or 25 of them.
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return [
        (current - dt.timedelta(hours=back)).astimezone(tz)
        for back in range(CHART_HOURS - 1, -1, -1)
    ]


def traffic(*, scope: QuerySet[OutboxMessage], now: dt.datetime, tz: ZoneInfo) -> Traffic:
    """Sent and failed mails per day (30 days) and per hour (48 h), per SMTP configuration.

    Both series are counted per local hour over the 30 days; days are sums of their hours
    (two grouped queries, at most 720 rows per configuration). Sent: the mail's sent time.
    Failed: the time of the attempt that failed it (a failed mail has no time of its own)."""
    today = now.astimezone(tz).date()
    days = [today - dt.timedelta(days=back) for back in range(CHART_DAYS - 1, -1, -1)]
    since = local_midnight(days[0], tz)
    sent = (
        scope.filter(status=Status.SENT, sent_at__gte=since)
        .order_by()
        .values(configuration=F("smtp_configuration_id"), hour=TruncHour("sent_at", tzinfo=tz))
        .annotate(n=Count("pk"))
    )
    # From the scope, so the visibility is the outbox's; the join starts at the few failed
    # attempts (attempt_failed_time_idx) and reads their mails by primary key.
    failed = (
        scope.filter(attempts__outcome=AttemptOutcome.FAILED, attempts__started_at__gte=since)
        .order_by()
        .values(
            configuration=F("attempts__smtp_configuration_id"),
            hour=TruncHour("attempts__started_at", tzinfo=tz),
        )
        .annotate(n=Count("attempts__id"))
    )
    hours = hour_buckets(now, tz)
    first_hour = hours[0]
    per_day: dict[int, Series] = {}
    per_hour: dict[int, Series] = {}
    for kind, rows in (("sent", sent), ("failed", failed)):
        for row in rows:
            config = row["configuration"]
            start = row["hour"].astimezone(tz)
            daily = getattr(per_day.setdefault(config, Series(config)), kind)
            day = start.date()
            daily[day] = daily.get(day, 0) + row["n"]
            if start >= first_hour:
                hourly = getattr(per_hour.setdefault(config, Series(config)), kind)
                key = start.astimezone(dt.UTC)
                hourly[key] = hourly.get(key, 0) + row["n"]
    names = dict(SmtpConfiguration.objects.filter(pk__in=per_day.keys()).values_list("pk", "name"))
    for series in [*per_day.values(), *per_hour.values()]:
        series.name = names.get(series.configuration_id, "")
    return Traffic(
        days=days,
        hours=hours,
        per_day=sorted(per_day.values(), key=lambda s: (s.name, s.configuration_id)),
        per_hour=sorted(per_hour.values(), key=lambda s: (s.name, s.configuration_id)),
    )


def actions_needing_attention(*, actions: QuerySet[Action]) -> list[ActionRun]:
    """The last finished run of each visible action, where it failed, was missed, or left
    recipients out (skipped or failed ones); newest first, with its action."""
    last_run = (
        ActionRun.objects.filter(action=OuterRef("pk"), status__in=FINISHED_RUN_STATUSES)
        .order_by("-slot", "-pk")
        .values("pk")[:1]
    )
    last_ids = actions.annotate(last_run=Subquery(last_run)).values("last_run")
    return list(
        ActionRun.objects.filter(pk__in=last_ids)
        .filter(Q(status__in=PROBLEM_RUN_STATUSES) | Q(skipped_count__gt=0) | Q(failed_count__gt=0))
        .select_related("action")
        .order_by("-slot", "-pk")
    )


@dataclass(frozen=True)
class ConfigurationHealth:
    configuration: SmtpConfiguration
    test_failed_at: dt.datetime | None  # the last connection test or test mail failed
    delivery_outcome: str  # the last delivery attempt's outcome, if it was not "sent"
    delivery_at: dt.datetime | None

    @property
    def delivery_outcome_label(self) -> str:
        return str(AttemptOutcome(self.delivery_outcome).label) if self.delivery_outcome else ""


def configurations_needing_attention(*, user: User | AnonymousUser) -> list[ConfigurationHealth]:
    """SMTP configurations whose last test (connection test or test mail, as the Log keeps
    them) or last delivery attempt failed. Configurations are shared, not a team's: shown to
    whoever may see them. One query; each subquery reads one index entry."""
    if not user.has_perm("smtpconfig.view_smtpconfiguration"):
        return []
    tests = LogEntry.objects.filter(
        content_type__app_label=SmtpConfiguration._meta.app_label,
        content_type__model=SmtpConfiguration._meta.model_name,
        object_id=OuterRef("pk"),
        message__in=list(TRANSPORT_CHECK_MESSAGES.values()),
    ).order_by("-time", "-id")
    attempts = DeliveryAttempt.objects.filter(smtp_configuration=OuterRef("pk")).order_by(
        "-started_at", "-id"
    )
    # Only the name: the other columns hold secrets, which are decrypted when loaded.
    configurations = (
        SmtpConfiguration.objects.only("pk", "name")
        .annotate(
            last_test_message=Subquery(tests.values("message")[:1]),
            last_test_at=Subquery(tests.values("time")[:1]),
            last_outcome=Subquery(attempts.values("outcome")[:1]),
            last_attempt_at=Subquery(attempts.values("started_at")[:1]),
        )
        .order_by("name")
    )
    found = []
    for configuration in configurations:
        test_failed = configuration.last_test_message in FAILED_TEST_MESSAGES
        delivery_failed = configuration.last_outcome not in (None, AttemptOutcome.SENT)
        if test_failed or delivery_failed:
            found.append(
                ConfigurationHealth(
                    configuration=configuration,
                    test_failed_at=configuration.last_test_at if test_failed else None,
                    delivery_outcome=configuration.last_outcome if delivery_failed else "",
                    delivery_at=configuration.last_attempt_at if delivery_failed else None,
                )
            )
    return found


def calserver_sync_problems(*, user: User | AnonymousUser) -> list[str]:
    """The calServer sync when it has failed for more than a day: every role sees it, as
    the reminders they send are built from that data (the text names no credentials)."""
    warning = failing_sync_warning()
    return [warning] if warning else []


@dataclass(frozen=True)
class NextRun:
    when: dt.datetime
    action: Action


def next_runs(*, actions: QuerySet[Action], count: int = NEXT_RUNS) -> list[NextRun]:
    """The next `count` scheduled runs of the visible published actions. Only the `count`
    actions due first can have one of them (each has its next run in hand), so the rest of
    their slots come from their rules, in Python, without reading further actions."""
    first = list(
        actions.filter(published=True, next_due_at__isnull=False)
        .select_related("group")
        .order_by("next_due_at", "pk")[:count]
    )
    streams = []
    for position, action in enumerate(first):
        due = action.next_due_at
        if due is None:  # excluded above; says so to the type checker
            continue
        later = next_slots(rule_of(action), due, count - 1)
        streams.append([(slot, position, action) for slot in [due, *later]])
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    return [NextRun(when=slot, action=action) for slot, _pos, action in islice(merged, count)]


@dataclass
class Overview:
    now: dt.datetime
    periods: list[Period]
    mails: MailFigures
    traffic: Traffic
    problem_runs: list[ActionRun]
    problem_configurations: list[ConfigurationHealth]
    sync_problems: list
    next_runs: list[NextRun]

    @property
    def needs_attention(self) -> bool:
        return bool(
            self.mails.failed
            or self.mails.deferred
            or self.problem_runs
            or self.problem_configurations
            or self.sync_problems
        )


def overview(*, user: User | AnonymousUser, now: dt.datetime | None = None) -> Overview:
    """Everything the overview page shows, for this user."""
    now = now or timezone.now()
    tz = zone()
    # One scope for all outbox figures: the user's visibility is worked out once.
    scope = outbox_message_list(user=user)
    actions = visible_actions(user=user)
    return Overview(
        now=now,
        periods=periods(now, tz),
        mails=mail_figures(scope=scope, now=now, tz=tz),
        traffic=traffic(scope=scope, now=now, tz=tz),
        problem_runs=actions_needing_attention(actions=actions),
        problem_configurations=configurations_needing_attention(user=user),
        sync_problems=calserver_sync_problems(user=user),
        next_runs=next_runs(actions=actions),
    )
