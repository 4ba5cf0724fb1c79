"""Run the test suite at a chosen wall-clock time: CALMAIL_TEST_CLOCK.

    CALMAIL_TEST_CLOCK=2026-12-06T23:30:00+00:00 .venv/bin/python -m pytest

The value is ISO 8601 with a UTC offset. tests/conftest.py starts a session-wide
time_machine travel there before the test database is set up and stops it at the end.
The clock ticks on from there, so timeouts, sleeps and "a second later" still work
(time.monotonic(), which asyncio, socket timeouts and the polling helpers use, is never
moved). Tests that travel themselves (time_machine.travel, the time_machine fixture)
nest inside it and come back to it. Dates that only go wrong in some hours of the day
(the UTC date is not the Berlin date between 22:00/23:00 and midnight UTC) then show
up on demand instead of once a night.

Who sees the moved clock, and why the suite holds where it is not seen:

- Threads of this process (live_server, the in-process SMTP server) share its clock.
- Chromium (Playwright) keeps the real clock. The pages run no date arithmetic in
  JavaScript, and Django's cookies carry Max-Age, which browsers prefer to Expires.
- OpenSSL checks certificates against the real clock: the test certificates are dated
  from the real time (tests/smtp_server.py).
- SQLite's and PostgreSQL's own clocks are not moved; calmail never asks the database
  for the time (no Now(), no auto-timestamps in SQL), every timestamp comes from Python.
- Child processes do not inherit a travel. Python children whose clock matters (the Celery
  workers and beat of tests/integration, which compare due times the tests wrote) are
  started through python_command(), which runs them at this process's clock, ticking too.
  Other children (manage.py schedule_preview with explicit dates, redis-server with its
  relative expiries, Postfix's smtp-sink) read no time the tests compare with.
"""

from __future__ import annotations

import datetime as dt
import os
import runpy
import sys
import time

import time_machine

VARIABLE = "CALMAIL_TEST_CLOCK"
# Seconds this process's clock is ahead of the real one, for python_command()'s children.
OFFSET_VARIABLE = "CALMAIL_TEST_CLOCK_OFFSET"

_session: time_machine.travel | None = None


def destination() -> dt.datetime | None:
    """The moment CALMAIL_TEST_CLOCK asks for, or None when it is unset."""
    value = os.environ.get(VARIABLE, "").strip()
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{VARIABLE}={value!r} needs a UTC offset, e.g. {value}+00:00")
    return moment


def real_time() -> float:
    """The real time.time(), also while a test or CALMAIL_TEST_CLOCK travels."""
    if time_machine.escape_hatch.is_travelling():
        return time_machine.escape_hatch.time.time()
    return time.time()


def _travel_by(offset: float) -> time_machine.travel:
    # A timestamp, not the datetime: given a UTC or zoneinfo datetime, time_machine would
    # also switch the process's TZ, and the suite must run in the zone Django set.
    travel = time_machine.travel(real_time() + offset, tick=True)
    travel.start()
    time.time()  # a ticking travel starts counting at its first reading: start it now
    return travel


def start_session() -> dt.datetime | None:
    """Travel to CALMAIL_TEST_CLOCK until stop_session(); returns the moment, or None."""
    global _session
    moment = destination()
    if moment is None or _session is not None:
        return moment
    offset = moment.timestamp() - real_time()
    _session = _travel_by(offset)
    os.environ[OFFSET_VARIABLE] = repr(offset)
    return moment


def stop_session() -> None:
    global _session
    if _session is not None:
        _session.stop()
        _session = None
        os.environ.pop(OFFSET_VARIABLE, None)


def python_command() -> list[str]:
    """The start of the command line of a Python child that must share this process's
    clock: `[*python_command(), "-m", "celery", ...]`. Plain `sys.executable` without
    CALMAIL_TEST_CLOCK. The child reads the offset from the environment it inherits."""
    if _session is None:
        return [sys.executable]
    return [sys.executable, "-m", "tests.clock"]


def _main(argv: list[str]) -> None:
    """`python -m tests.clock -m module args...` or `... -c code args...`: run it at the
    clock of the process that started it (CALMAIL_TEST_CLOCK_OFFSET)."""
    if len(argv) < 2 or argv[0] not in ("-m", "-c"):
        raise SystemExit("usage: python -m tests.clock (-m module | -c code) [args...]")
    offset = os.environ.get(OFFSET_VARIABLE)
    if offset:
        _travel_by(float(offset))
    kind, target, *rest = argv
    if kind == "-m":
        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102


if __name__ == "__main__":
    _main(sys.argv[1:])
