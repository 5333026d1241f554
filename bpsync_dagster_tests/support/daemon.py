"""The real `dagster-daemon` as a subprocess, on the test's Dagster instance."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

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


class Daemon:
    """`dagster-daemon run -w workspace.yaml` in a process group of its own, logging to `log_path`."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self._environment = environment
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        executable = Path(sys.executable).parent / "dagster-daemon"
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [str(executable), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            env=self._environment,
            cwd=self._log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM), as an operator's restart."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash: SIGKILL to the daemon and everything it started."""
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, number)
        except ProcessLookupError:
            pass
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> "Daemon":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()
