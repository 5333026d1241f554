"""The real `dagster-webserver` as a subprocess, on a test node's Dagster instance, and its GraphQL API."""

import time
from pathlib import Path
from typing import Any

import requests

from bpsync_dagster.runs.launch import LOCATION_NAME
from bpsync_dagster_tests.support.daemon import wait_until
from bpsync_dagster_tests.support.ports import free_port
from bpsync_dagster_tests.support.processes import ServiceProcess

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}
"""
FINISHED_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")

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


def finished_status(url: str, run_id: str, timeout: float = 120) -> str:
    """Wait until the run has finished, as the webserver reports it; its final status."""

    def finished() -> str | None:
        status = graphql(url, RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]["status"]
        return status if status in FINISHED_STATUSES else None

    return wait_until(finished, timeout, f"run {run_id} to finish (the daemon dequeues it)")


class Webserver(ServiceProcess):
    """`dagster-webserver -w workspace.yaml` on 127.0.0.1.

    `start()` returns once the code location `bpsync` is loaded, so the UI and GraphQL are usable.
    """

    def __init__(self, environment: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        arguments = [*self.workspace_arguments(), "-h", "127.0.0.1", "-p", str(self.port)]
        super().__init__("dagster-webserver", arguments, environment, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        super().start()
        try:
            self._wait_until_loaded(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_until_loaded(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            status = self.exit_status()
            if status is not None:
                raise AssertionError(f"dagster-webserver exited with status {status}:\n{self.log()[-5000:]}")
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

    def __enter__(self) -> "Webserver":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
