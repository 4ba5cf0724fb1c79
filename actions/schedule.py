"""The calendar rules of actions (docs/design.md 5.6.1), free of Django models.

A rule matches a local date when the date matches every non-empty field (AND,
deliberately unlike Vixie cron, which ORs day of month and weekday). On a
matching date the slot is the wall-clock time of day in the installation's time
zone: a time the clock skips (spring forward) runs at the shifted instant, an
ambiguous one (fall back) at its first occurrence, so there is at most one slot
per local date.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings

LAST = "last"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Every (month, day, weekday) combination recurs within the 400-year Gregorian
# cycle, so a walk this long finds the next slot of any rule that can fire.
_HORIZON_MONTHS = 400 * 12 + 12
_MAX_DAYS = {
    month: 29 if month == 2 else calendar.monthrange(2001, month)[1] for month in range(1, 13)
}


def default_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class Rule:
    """days: 1-31 and/or LAST; weekdays: 0 (Monday) - 6; months: 1-12. Empty means any."""

    time: dt.time
    start: dt.datetime
    end: dt.datetime | None = None
    days: frozenset = field(default_factory=frozenset)
    weekdays: frozenset = field(default_factory=frozenset)
    months: frozenset = field(default_factory=frozenset)

    def __post_init__(self):
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        object.__setattr__(self, "months", frozenset(self.months))
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        bad_days = {d for d in self.days if d != LAST and not (isinstance(d, int) and 1 <= d <= 31)}
        if bad_days:
            raise ValueError(f"days out of range: {sorted(map(str, bad_days))}")
        if any(not (isinstance(w, int) and 0 <= w <= 6) for w in self.weekdays):
            raise ValueError("weekdays must be 0 (Monday) to 6 (Sunday)")
        if any(not (isinstance(m, int) and 1 <= m <= 12) for m in self.months):
            raise ValueError("months must be 1 to 12")


def slot_on(rule: Rule, day: dt.date, tz: ZoneInfo | None = None) -> dt.datetime:
    """The instant of the rule's time on a local date (whether or not the date matches)."""
    tz = tz or default_zone()
    # fold=0 picks the offset before a transition: for a skipped time that is the
    # shifted instant (02:30 -> 03:30 CEST), for a repeated one its first occurrence.
    local = dt.datetime.combine(day, rule.time, tzinfo=tz).replace(fold=0)
    return local.astimezone(dt.UTC).astimezone(tz)


def _days_in_month(rule: Rule, year: int, month: int) -> list[int]:
    last = calendar.monthrange(year, month)[1]
    if not rule.days:
        return list(range(1, last + 1))
    days = {d for d in rule.days if d != LAST and d <= last}
    if LAST in rule.days:
        days.add(last)
    return sorted(days)


def _months_from(year: int, month: int) -> Iterable[tuple[int, int]]:
    for _ in range(_HORIZON_MONTHS):
        yield year, month
        month += 1
        if month == 13:
            year, month = year + 1, 1


def iter_slots(rule: Rule, after: dt.datetime, tz: ZoneInfo | None = None) -> Iterable[dt.datetime]:
    """Slots strictly after `after`, in order, within Start and End."""
    tz = tz or default_zone()
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    if not can_ever_fire(rule, ignore_window=True):
        return
    lower = max(after, rule.start - dt.timedelta(microseconds=1))
    # A slot on the day before the lower bound's local date can never qualify.
    first_day = lower.astimezone(tz).date() - dt.timedelta(days=1)
    end_day = rule.end.astimezone(tz).date() + dt.timedelta(days=1) if rule.end else None
    for year, month in _months_from(first_day.year, first_day.month):
        if end_day is not None and dt.date(year, month, 1) > end_day:
            return
        if rule.months and month not in rule.months:
            continue
        for number in _days_in_month(rule, year, month):
            day = dt.date(year, month, number)
            if day < first_day or (rule.weekdays and day.weekday() not in rule.weekdays):
                continue
            slot = slot_on(rule, day, tz)
            if slot <= lower:
                continue
            if rule.end is not None and slot > rule.end:
                return
            yield slot


def next_slots(
    rule: Rule, after: dt.datetime, count: int, tz: ZoneInfo | None = None
) -> list[dt.datetime]:
    """The first `count` slots strictly after `after`; fewer when End comes first."""
    slots: list[dt.datetime] = []
    if count <= 0:
        return slots
    for slot in iter_slots(rule, after, tz):
        slots.append(slot)
        if len(slots) == count:
            break
    return slots


def next_slot(rule: Rule, after: dt.datetime, tz: ZoneInfo | None = None) -> dt.datetime | None:
    slots = next_slots(rule, after, 1, tz)
    return slots[0] if slots else None


def can_ever_fire(rule: Rule, tz: ZoneInfo | None = None, *, ignore_window: bool = False) -> bool:
    """Whether any date satisfies the rule (and, unless ignored, one lies within Start and End).

    Weekdays never make a rule impossible on their own: every calendar date falls on
    every weekday in some year. So only day of month against month can conflict.
    """
    months = rule.months or set(range(1, 13))
    possible = any(
        not rule.days
        or LAST in rule.days
        or any(d != LAST and d <= _MAX_DAYS[month] for d in rule.days)
        for month in months
    )
    if not possible:
        return False
    if ignore_window:
        return True
    if rule.end is None:
        return True
    if rule.end < rule.start:
        return False
    return next_slot(rule, rule.start - dt.timedelta(microseconds=1), tz) is not None


def parse_days(values: Iterable[str | int]) -> frozenset:
    days: set = set()
    for value in values:
        text = str(value).strip().lower()
        if not text:
            continue
        if text == LAST:
            days.add(LAST)
            continue
        number = int(text)
        if not 1 <= number <= 31:
            raise ValueError(f"day of month out of range: {number}")
        days.add(number)
    return frozenset(days)


def parse_weekdays(values: Iterable[str | int]) -> frozenset:
    weekdays: set[int] = set()
    for value in values:
        text = str(value).strip().lower()
        if not text:
            continue
        if text[:3] in WEEKDAY_NAMES and not text.isdigit():
            weekdays.add(WEEKDAY_NAMES.index(text[:3]))
            continue
        number = int(text)
        if not 0 <= number <= 6:
            raise ValueError(f"weekday out of range: {number}")
        weekdays.add(number)
    return frozenset(weekdays)


def parse_months(values: Iterable[str | int]) -> frozenset:
    months: set[int] = set()
    for value in values:
        text = str(value).strip()
        if not text:
            continue
        number = int(text)
        if not 1 <= number <= 12:
            raise ValueError(f"month out of range: {number}")
        months.add(number)
    return frozenset(months)


def days_sort_key(day) -> int:
    return 32 if day == LAST else int(day)
