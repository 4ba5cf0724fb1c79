"""scripts/keep-running: what `make run` runs the worker and beat under."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "keep-running"


def test_a_command_that_exits_is_started_again_until_a_signal_ends_the_loop(tmp_path):
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [str(SCRIPT), "sh", "-c", f"echo run >> {runs}; exit 3"],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            not runs.exists() or len(runs.read_text().splitlines()) < 2
        ):
            time.sleep(0.2)
        assert len(runs.read_text().splitlines()) >= 2
        assert process.poll() is None
    finally:
        os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    with process.stderr:
        assert b"exited with status 3; starting it again" in process.stderr.read()


def test_a_signal_stops_a_running_command(tmp_path):
    marker = tmp_path / "stopped"
    process = subprocess.Popen(
        [str(SCRIPT), "sh", "-c", f"trap 'echo stopped > {marker}; exit 0' TERM; sleep 30 & wait"],
        start_new_session=True,
    )
    time.sleep(1)
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=10) == 0
    assert marker.read_text().strip() == "stopped"


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_procfile_keeps_worker_and_beat_running(name):
    procfile = (SCRIPT.parents[1] / "Procfile.dev").read_text()
    [line] = [line for line in procfile.splitlines() if line.startswith(f"{name}:")]

    assert ("scripts/keep-running" in line) == (name != "web")
