"""The real `dagster-webserver` as a subprocess, on a test node's Dagster instance, and its GraphQL API."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

LOCATION_NAME = "bpsync"

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


class GraphQLError(AssertionError):
    """The GraphQL endpoint answered with `errors`."""


def graphql(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
    """POST `query` to the webserver at `url` (its root, or its `/graphql`); the response's `data`."""
    endpoint = url if url.rstrip("/").endswith("/graphql") else f"{url.rstrip('/')}/graphql"
    response = requests.post(endpoint, json={"query": query, "variables": variables or {}}, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise GraphQLError(f"GraphQL errors from {endpoint}: {body['errors']}")
    return body["data"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Webserver:
    """`dagster-webserver -w workspace.yaml` on 127.0.0.1 in a process group of its own, logging to `log_path`.

    `start()` returns once the code location `bpsync` is loaded, so the UI and GraphQL are usable.
    """

    def __init__(self, environment: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self._environment = environment
        self._log_path = log_path
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        executable = Path(sys.executable).parent / "dagster-webserver"
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(executable),
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            env=self._environment,
            cwd=self._log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_until_loaded(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_loaded(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(
                    f"dagster-webserver exited with status {self._process.returncode}:\n{self.log()[-5000:]}"
                )
            try:
                if requests.get(f"{self.url}/server_info", timeout=5).status_code == 200:
                    last = self._location_status()
                    if last == "LOADED":
                        return
            except requests.RequestException as error:
                last = f"{type(error).__name__}"
            time.sleep(0.5)
        raise AssertionError(
            f"dagster-webserver at {self.url} was not ready after {timeout} s (last: {last}):\n{self.log()[-5000:]}"
        )

    def _location_status(self) -> str:
        """`LOADED` once the code location is usable; a load error fails at once."""
        workspace = graphql(self.url, WORKSPACE_QUERY)["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            return f"{workspace['__typename']}: {workspace.get('message')}"
        for entry in workspace["locationEntries"]:
            if entry["name"] != LOCATION_NAME:
                continue
            loaded = entry["locationOrLoadError"]
            if loaded and loaded["__typename"] == "PythonError":
                raise AssertionError(f"code location {LOCATION_NAME} failed to load: {loaded['message']}")
            if entry["loadStatus"] == "LOADED" and loaded and loaded["__typename"] == "RepositoryLocation":
                return "LOADED"
            return entry["loadStatus"]
        return f"no code location {LOCATION_NAME}"

    def stop(self) -> None:
        """SIGTERM to the whole process group (webserver and its code server), SIGKILL if it lingers."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        self._process = None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> "Webserver":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
