"""The test clock (tests/clock.py): Python children of the suite run at its time.

The integration tests' Celery workers and beat need PostgreSQL; these run everywhere.
"""

import datetime
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import clock

REPO = Path(__file__).resolve().parents[2]
PRINT_TIME = "import time; print(time.time())"


def run(command: list[str]) -> str:
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_python_child_shares_this_process_clock():
    # Unset CALMAIL_TEST_CLOCK: both real. Set: both at the suite's clock.
    before = time.time()

    child = float(run([*clock.python_command(), "-c", PRINT_TIME]))

    assert before <= child <= time.time() + 1


def test_child_runs_ahead_by_the_offset_it_inherits(monkeypatch):
    offset = 3 * 366 * 86400.0
    monkeypatch.setenv(clock.OFFSET_VARIABLE, repr(offset))
    before = clock.real_time() + offset

    child = float(run([sys.executable, "-m", "tests.clock", "-c", PRINT_TIME]))

    assert before <= child <= clock.real_time() + offset + 1


def test_child_module_runs_as_main_at_the_inherited_clock(monkeypatch):
    offset = 3 * 366 * 86400.0
    monkeypatch.setenv(clock.OFFSET_VARIABLE, repr(offset))
    year = datetime.datetime.fromtimestamp(clock.real_time() + offset).year

    # `python -m calendar` prints the calendar of the current year, headed by the year.
    printed = run([sys.executable, "-m", "tests.clock", "-m", "calendar"])

    assert printed.split()[0] == str(year)


def test_clock_without_utc_offset_is_refused(monkeypatch):
    monkeypatch.setenv(clock.VARIABLE, "2026-12-06T23:30:00")

    with pytest.raises(ValueError, match="needs a UTC offset"):
        clock.destination()
