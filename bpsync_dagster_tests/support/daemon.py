"""The real `dagster-daemon` as a subprocess, on the test's Dagster instance."""

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bpsync_dagster_tests.support.processes import ServiceProcess

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """`check()`'s first truthy value, or AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_for_count(
    count: Callable[[], int],
    target: int,
    stall_timeout: float,
    what: str,
    interval: float = 1.0,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Until `count()` reaches `target`; AssertionError naming `what` and the count reached once it has not
    grown for `stall_timeout` seconds, with what `describe()` adds. A slow machine takes longer; a stuck one fails."""
    best, grew_at = -1, time.monotonic()
    while (current := count()) < target:
        if current > best:
            best, grew_at = current, time.monotonic()
        elif time.monotonic() - grew_at > stall_timeout:
            raise AssertionError(f"{what}: stuck at {current} of {target} for {stall_timeout} s\n{describe()}")
        time.sleep(interval)


class Daemon(ServiceProcess):
    """`python -m bpsync_dagster.daemon run -w workspace.yaml`, the shipped daemon command: sensors (every
    second), run queue, run monitoring. `dagster_command` runs Dagster's own `dagster-daemon` instead."""

    def __init__(self, environment: dict[str, str], log_path: Path, dagster_command: bool = False) -> None:
        super().__init__("dagster-daemon", ["run", *self.workspace_arguments()], environment, log_path)
        if not dagster_command:
            self._command = [sys.executable, "-m", "bpsync_dagster.daemon", "run", *self.workspace_arguments()]

    def __enter__(self) -> "Daemon":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()

    def problems(self, lines: int = 40) -> str:
        """The last `lines` warnings, errors and mapping-sensor summaries of the daemon's log."""
        marks = ("WARNING", "ERROR", "Error", "mapping sensor:")
        found = [line for line in self.log().splitlines() if any(mark in line for mark in marks)]
        return "\n".join(found[-lines:])
