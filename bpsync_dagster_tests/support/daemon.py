"""The real `dagster-daemon` as a subprocess, on the test's Dagster instance."""

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


class Daemon(ServiceProcess):
    """`dagster-daemon run -w workspace.yaml`: sensors, run queue, run monitoring."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        super().__init__("dagster-daemon", ["run", *self.workspace_arguments()], environment, log_path)

    def __enter__(self) -> "Daemon":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()
