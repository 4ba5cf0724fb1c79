import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

REPO = Path(__file__).resolve().parents[2]


def preview(*args):
    from io import StringIO

    out = StringIO()
    call_command("schedule_preview", *args, stdout=out)
    return out.getvalue().splitlines()


def test_schedule_preview_prints_first_slots_after():
    lines = preview(
        "--days", "1,15,last", "--weekdays", "mon,fri", "--months", "1,7",
        "--start", "2026-01-01T00:00", "--time", "07:30",
        "--after", "2026-01-01T00:00+01:00", "--count", "4",
    )  # fmt: skip

    # Days AND weekdays AND months: of 1, 15 and 31 January/July, only those on a Monday
    # or Friday (2026-07-31 Fri, 2027-01-01 Fri, 2027-01-15 Fri, 2028-01-31 Mon).
    assert lines == ["2026-07-31T07:30:00+02:00", "2027-01-01T07:30:00+01:00",
                     "2027-01-15T07:30:00+01:00", "2028-01-31T07:30:00+01:00"]  # fmt: skip


def test_schedule_preview_stops_at_end():
    lines = preview(
        "--start", "2026-05-01T09:00", "--end", "2026-05-03T09:00",
        "--after", "2026-04-01T00:00", "--count", "10",
    )  # fmt: skip

    # Time defaults to Start's local time.
    assert lines == ["2026-05-01T09:00:00+02:00", "2026-05-02T09:00:00+02:00",
                     "2026-05-03T09:00:00+02:00"]  # fmt: skip


def test_schedule_preview_after_is_strict_and_dst_shifts():
    lines = preview(
        "--start", "2026-01-01", "--time", "02:30",
        "--after", "2026-03-28T02:30:00+01:00", "--count", "2",
    )  # fmt: skip

    assert lines == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_schedule_preview_refuses_rule_that_never_fires():
    with pytest.raises(CommandError) as error:
        preview("--days", "31", "--months", "2", "--start", "2026-01-01", "--time", "07:00")

    assert error.value.returncode == 2
    assert "can never fire" in str(error.value)


def test_schedule_preview_exit_code_2_in_a_shell():
    result = subprocess.run(
        [sys.executable, "manage.py", "schedule_preview", "--days", "30,31", "--months", "2",
         "--start", "2026-01-01T00:00"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "calmail.settings_test"},
    )  # fmt: skip

    assert result.returncode == 2
    assert "can never fire" in result.stderr
    assert result.stdout == ""


def test_schedule_preview_prints_in_a_shell():
    result = subprocess.run(
        [sys.executable, "manage.py", "schedule_preview", "--weekdays", "sun", "--days", "25,26,27,28,29,30,31",
         "--start", "2026-01-01", "--time", "02:30", "--after", "2026-10-01", "--count", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "calmail.settings_test"},
    )  # fmt: skip

    # The last Sunday of October 2026 is the fall-back day: the first 02:30 (CEST).
    assert result.stdout == "2026-10-25T02:30:00+02:00\n"
    assert result.returncode == 0
