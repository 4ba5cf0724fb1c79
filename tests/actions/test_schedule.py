"""The rule engine against a brute-force walk over every minute of the local clock."""

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.schedule import (
    LAST,
    Rule,
    can_ever_fire,
    next_slot,
    next_slots,
    parse_days,
    parse_weekdays,
)

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE = dt.timedelta(minutes=1)
WINDOW_DAYS = 45
# Each window covers a DST change, a leap February, or a year end with day 31.
ANCHORS = (
    dt.date(2026, 3, 10),  # spring forward 2026-03-29
    dt.date(2026, 10, 5),  # fall back 2026-10-25
    dt.date(2027, 3, 10),  # spring forward 2027-03-28
    dt.date(2027, 10, 20),  # fall back 2027-10-31
    dt.date(2028, 1, 25),  # leap February 2028
    dt.date(2026, 12, 10),  # December 31, new year
)


def local(*args, fold=0):
    return dt.datetime(*args, tzinfo=BERLIN, fold=fold)


@functools.cache
def clock(anchor: dt.date) -> dict:
    """First UTC instant at which the Berlin wall clock shows each (date, hour, minute)."""
    begin = dt.datetime.combine(anchor - dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    stop = begin + dt.timedelta(days=WINDOW_DAYS + 4)
    shown = {}
    moment = begin
    while moment < stop:
        wall = moment.astimezone(BERLIN)
        shown.setdefault((wall.date(), wall.hour, wall.minute), moment)
        moment += MINUTE
    return shown


def brute_slot(anchor: dt.date, day: dt.date, time: dt.time) -> dt.datetime:
    shown = clock(anchor)
    wanted = dt.datetime.combine(day, time)
    probe = wanted
    # A skipped wall time runs when the clock from before the jump would have shown it.
    while (probe.date(), probe.hour, probe.minute) not in shown:
        probe -= MINUTE
    return (shown[(probe.date(), probe.hour, probe.minute)] + (wanted - probe)).astimezone(BERLIN)


def brute_matches(rule: Rule, day: dt.date) -> bool:
    is_last = (day + dt.timedelta(days=1)).month != day.month
    day_ok = not rule.days or day.day in rule.days or (LAST in rule.days and is_last)
    weekday_ok = not rule.weekdays or day.weekday() in rule.weekdays
    month_ok = not rule.months or day.month in rule.months
    return day_ok and weekday_ok and month_ok


def brute_slots(rule: Rule, anchor: dt.date, after: dt.datetime) -> list[dt.datetime]:
    slots = []
    for offset in range(WINDOW_DAYS):
        day = anchor + dt.timedelta(days=offset)
        if not brute_matches(rule, day):
            continue
        slot = brute_slot(anchor, day, rule.time)
        if slot > after and slot >= rule.start and (rule.end is None or slot <= rule.end):
            slots.append(slot)
    return slots


day_values = st.one_of(st.integers(1, 31), st.integers(26, 31), st.just(LAST))
times = st.one_of(
    st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59])),
    # Around the changes: 02:xx is skipped in spring and repeated in autumn.
    st.builds(dt.time, st.integers(1, 3), st.integers(0, 59)),
)


@st.composite
def windowed_rules(draw):
    anchor = draw(st.sampled_from(ANCHORS))
    window_months = sorted({(anchor + dt.timedelta(days=n)).month for n in range(WINDOW_DAYS)})
    months = draw(
        st.one_of(
            st.just(frozenset()),
            st.frozensets(st.sampled_from(window_months), max_size=2),
            st.frozensets(st.integers(1, 12), max_size=3),
        )
    )
    days = draw(st.one_of(st.just(frozenset()), st.frozensets(day_values, max_size=4)))
    weekdays = draw(st.frozensets(st.integers(0, 6), max_size=3))
    time = draw(times)
    origin = local(anchor.year, anchor.month, anchor.day)
    start = origin + dt.timedelta(minutes=draw(st.integers(-3 * 1440, 30 * 1440)))
    end = draw(
        st.one_of(
            st.none(),
            st.builds(lambda m: start + dt.timedelta(minutes=m), st.integers(0, 50 * 1440)),
            # Start and End on the same day: a one-off.
            st.builds(lambda m: start.replace(hour=23, minute=59) if m else start, st.booleans()),
        )
    )
    after = origin + dt.timedelta(minutes=draw(st.integers(0, 40 * 1440)))
    rule = Rule(time=time, start=start, end=end, days=days, weekdays=weekdays, months=months)
    return rule, anchor, after


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(windowed_rules())
def test_next_slots_match_minute_walk(case):
    rule, anchor, after = case
    expected = brute_slots(rule, anchor, after)

    found = next_slots(rule, after, len(expected) + 1, BERLIN)

    assert found[: len(expected)] == expected
    assert [s.utcoffset() for s in found[: len(expected)]] == [s.utcoffset() for s in expected]
    if len(found) > len(expected):
        window_end = anchor + dt.timedelta(days=WINDOW_DAYS)
        assert found[len(expected)].date() >= window_end
    assert len({s.date() for s in found}) == len(found)


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.frozensets(day_values, max_size=3),
    st.frozensets(st.integers(0, 6), max_size=2),
    st.frozensets(st.integers(1, 12), max_size=3),
)
def test_can_ever_fire_matches_28_years_of_dates(days, weekdays, months):
    rule = Rule(
        time=dt.time(7), start=local(2024, 1, 1), days=days, weekdays=weekdays, months=months
    )
    # 2024..2052 holds every weekday of 29 February.
    day, stop, fires = dt.date(2024, 1, 1), dt.date(2052, 12, 31), False
    while day <= stop and not fires:
        fires = brute_matches(rule, day)
        day += dt.timedelta(days=1)

    assert can_ever_fire(rule, BERLIN) == fires
    assert (next_slot(rule, local(2024, 1, 1), BERLIN) is not None) == fires


def test_spring_forward_runs_at_shifted_instant():
    rule = Rule(time=dt.time(2, 30), start=local(2026, 1, 1))

    slots = next_slots(rule, local(2026, 3, 28, 12), 2, BERLIN)

    assert [s.isoformat() for s in slots] == [
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_fall_back_runs_once_at_first_occurrence():
    rule = Rule(time=dt.time(2, 30), start=local(2026, 1, 1))

    slots = next_slots(rule, local(2026, 10, 25, 0), 2, BERLIN)

    assert [s.isoformat() for s in slots] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]
    # After the first 02:30 has passed, the repeated 02:30 is not a second slot.
    assert next_slot(rule, slots[0], BERLIN) == slots[1]


def test_days_and_weekday_combine_with_and():
    rule = Rule(time=dt.time(7), start=local(2026, 1, 1), days=frozenset(range(1, 8)), weekdays={0})

    slots = next_slots(rule, local(2026, 1, 1), 3, BERLIN)

    assert [s.date() for s in slots] == [
        dt.date(2026, 1, 5),
        dt.date(2026, 2, 2),
        dt.date(2026, 3, 2),
    ]


def test_missing_day_is_skipped_not_moved():
    rule = Rule(time=dt.time(7), start=local(2026, 1, 1), days={31})

    slots = next_slots(rule, local(2026, 1, 1), 3, BERLIN)

    assert [s.date() for s in slots] == [
        dt.date(2026, 1, 31),
        dt.date(2026, 3, 31),
        dt.date(2026, 5, 31),
    ]


def test_last_day_follows_leap_years():
    rule = Rule(time=dt.time(7), start=local(2027, 1, 1), days={LAST}, months={2})

    slots = next_slots(rule, local(2027, 1, 1), 2, BERLIN)

    assert [s.date() for s in slots] == [dt.date(2027, 2, 28), dt.date(2028, 2, 29)]


@pytest.mark.parametrize(
    ("days", "months"),
    [({31}, {2}), ({30}, {2}), ({30, 31}, {2}), ({31}, {4, 6, 9, 11})],
)
def test_can_ever_fire_rejects_impossible_dates(days, months):
    rule = Rule(time=dt.time(7), start=local(2026, 1, 1), days=days, months=months)

    assert can_ever_fire(rule, BERLIN) is False
    assert next_slots(rule, local(2026, 1, 1), 5, BERLIN) == []


def test_can_ever_fire_rejects_window_without_slot():
    rule = Rule(
        time=dt.time(7), start=local(2026, 1, 1), end=local(2026, 1, 31, 23), days={1}, weekdays={0}
    )

    assert can_ever_fire(rule, BERLIN) is False


def test_one_off_on_start_day():
    rule = Rule(time=dt.time(9), start=local(2026, 5, 4, 8), end=local(2026, 5, 4, 23, 59))

    assert next_slots(rule, local(2026, 1, 1), 5, BERLIN) == [local(2026, 5, 4, 9)]


def test_end_cuts_the_list_short():
    rule = Rule(time=dt.time(9), start=local(2026, 5, 1), end=local(2026, 5, 3, 9))

    assert next_slots(rule, local(2026, 5, 1), 10, BERLIN) == [
        local(2026, 5, 1, 9),
        local(2026, 5, 2, 9),
        local(2026, 5, 3, 9),
    ]


def test_parse_accepts_names_and_last():
    assert parse_days(["1", "15", "last"]) == frozenset({1, 15, LAST})
    assert parse_weekdays(["mon", "fri"]) == frozenset({0, 4})
    with pytest.raises(ValueError):
        parse_days(["32"])
