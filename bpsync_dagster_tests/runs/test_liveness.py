"""Whether a run's worker process is alive, read from /proc for real processes."""

import os
import subprocess
import sys
import time

from bpsync_dagster.runs.liveness import process_alive


def test_a_running_process_is_alive() -> None:
    assert process_alive(os.getpid(), time.time())


def test_an_ended_process_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert not process_alive(child.pid, time.time())


def test_a_killed_process_not_yet_reaped_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        deadline = time.monotonic() + 10
        while "Z" not in open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0]:
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.05)

        assert not process_alive(child.pid, time.time())
    finally:
        child.wait()


def test_a_process_that_started_after_the_report_is_another_one_reusing_the_pid() -> None:
    reported_at = time.time() - 30
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not process_alive(child.pid, reported_at)
        assert process_alive(child.pid, time.time())
    finally:
        child.kill()
        child.wait()
