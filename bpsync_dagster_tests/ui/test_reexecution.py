"""A run that `bpsync sync` left failed is re-executed from failure through the webserver, as the UI does."""

import json
from pathlib import Path

from bpsync_dagster_tests.support.daemon import Daemon
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.webserver import finished_status, graphql

# The resolver behind the UI's "Re-execute from failure" (the UI sends it by its older alias,
# `launchPipelineReexecution`; both fields are the same `LaunchRunReexecutionMutation`).
REEXECUTE_FROM_FAILURE = """
mutation ReexecuteFromFailure($parentRunId: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parentRunId, strategy: FROM_FAILURE}) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
    ... on PythonError { stack }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status parentRunId rootRunId stepKeysToExecute tags { key value } }
  }
}
"""

COPY_FILES_OUTPUT = """
query CopyFilesOutput($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepOutputEvent {
          stepKey
          metadataEntries {
            label
            ... on IntMetadataEntry { intValue }
            ... on TableMetadataEntry { table { records } }
          }
        }
      }
    }
  }
}
"""


def _copy_files_metadata(url: str, run_id: str) -> dict:
    """The `copy_files` step's output metadata as the UI's event log gets it: label -> int or records."""
    logs = graphql(url, COPY_FILES_OUTPUT, {"runId": run_id})["logsForRun"]
    assert logs["__typename"] == "EventConnection", logs
    (output,) = [
        event
        for event in logs["events"]
        if event["__typename"] == "ExecutionStepOutputEvent" and event["stepKey"] == "synced_dataset.copy_files[0]"
    ]
    return {
        entry["label"]: [json.loads(record) for record in entry["table"]["records"]]
        if "table" in entry
        else entry.get("intValue")
        for entry in output["metadataEntries"]
    }


def _run(url: str, run_id: str) -> dict:
    found = graphql(url, RUN, {"runId": run_id})["runOrError"]
    assert found["__typename"] == "Run", found
    return found


def test_a_failed_cli_run_is_reexecuted_from_failure_through_the_webserver(
    ui_node: Node, start_webserver, tmp_path: Path
) -> None:
    node = ui_node
    # The daemon's sensors read and publish nowhere: no info-error of this test may reach a real queue.
    node.extra_env = {"BROKER_QUEUE": f"{node.prefix}-absent", "BROKER_EXCHANGE": f"{node.prefix}-absent"}
    failed = node.sync_with_a_missing_body("ui-resume")
    assert failed.result.returncode == 1, failed.result.stdout + failed.result.stderr
    dataset_id, files, parent_run_id = failed.dataset_id, failed.files, failed.run_id
    failed.restore_body()

    daemon = Daemon(node.environment(), tmp_path / "daemon.log")
    daemon.start()
    try:
        webserver = start_webserver(node)
        assert _run(webserver.url, parent_run_id)["status"] == "FAILURE"

        launched = graphql(webserver.url, REEXECUTE_FROM_FAILURE, {"parentRunId": parent_run_id})
        result = launched["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        assert result["run"]["status"] == "QUEUED", result  # the QueuedRunCoordinator: the daemon launches it
        run_id = result["run"]["runId"]

        try:
            finished_status(webserver.url, run_id)
        except AssertionError as error:
            raise AssertionError(f"{error}; daemon log:\n{daemon.log()[-5000:]}") from None
        run = _run(webserver.url, run_id)
    finally:
        daemon.kill()

    assert run["status"] == "SUCCESS", daemon.log()[-5000:]
    assert run["parentRunId"] == parent_run_id and run["rootRunId"] == parent_run_id
    assert set(run["stepKeysToExecute"]) == {
        f"synced_dataset.{op}" for op in ("copy_files[0]", "build_file_sync_manifest", "post_manifest")
    }
    assert {"key": "dataset_id", "value": dataset_id} in run["tags"]
    metadata = _copy_files_metadata(webserver.url, run_id)
    assert (metadata["files_copied"], metadata["files_skipped"]) == (1, 2), metadata
    actions = {record["accession_id"]: record["action"] for record in metadata["files"]}
    assert actions == {
        files[0].accession_id: "skip",
        files[1].accession_id: "skip",
        files[2].accession_id: "copy",
    }

    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert len(node.remote.received) == 1
    assert node.remote.received[0]["dataset_id"] == dataset_id
