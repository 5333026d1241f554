"""Dagster's own service commands (daemon, webserver) as subprocesses of a test."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, AnyStr

from bpsync_dagster_tests.support.environment import PROJECT_ROOT, assert_no_secret


def read_line(stream: IO[AnyStr], timeout: float) -> AnyStr:
    """The next line of a child's pipe, or AssertionError after `timeout` seconds without one.

    The read runs in a thread of its own: a line that never comes leaves that thread blocked until
    the child ends (its test kills it), not the test.
    """
    lines: list[AnyStr] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), name="read-line", daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        raise AssertionError(f"no line from the process within {timeout} s")
    return lines[0]


class ServiceProcess:
    """`<venv>/bin/<program> <arguments>` in a process group of its own, logging to `log_path`."""

    def __init__(self, program: str, arguments: list[str], environment: dict[str, str], log_path: Path) -> None:
        self._command = [str(Path(sys.executable).parent / program), *arguments]
        self._environment = environment
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._temporary: Path | None = None

    @staticmethod
    def workspace_arguments() -> list[str]:
        return ["-w", str(PROJECT_ROOT / "workspace.yaml")]

    def start(self) -> None:
        """Its temporary files (the sockets of the code servers it starts among them) go to a directory of
        its own, removed when it is stopped or killed: a killed code server cannot remove its socket."""
        self._temporary = Path(tempfile.mkdtemp(prefix="bpsync-test-"))
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command,
                env={**self._environment, "TMPDIR": str(self._temporary)},
                cwd=self._log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exit_status(self) -> int | None:
        """None while it runs."""
        return None if self._process is None else self._process.poll()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM to the group), then SIGKILL if it lingers."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash: SIGKILL to the process and everything it started."""
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
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
        assert_no_secret(self.log(), f"the log of {self._command[0]}")

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
