"""The `matches_sda_database` check of one dataset, run on its own from the UI.

The asset's check tab launches Dagster's asset job with only that check selected and the dataset's
partition as the run's `dagster/partition` tag; the daemon runs it, and the check result is
recorded for that partition: passed while the dataset's objects are in place, failed and naming
the file once one is gone.
"""

import os
from pathlib import Path

import dagster as dg

from bpsync_dagster.inventory import MATCHES_SDA_CHECK, SYNCED_DATASET
from bpsync_dagster.runs.launch import LOCATION_NAME
from bpsync_dagster_tests.support.asset_checks import latest_check_record
from bpsync_dagster_tests.support.daemon import Daemon
from bpsync_dagster_tests.support.environment import SDA_DB_DATASETS_USER, Node
from bpsync_dagster_tests.support.webserver import finished_status, graphql

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on PythonError { message stack }
  }
}
"""


def launch_check(url: str, dataset_id: str) -> str:
    """Launch the check for one dataset as the UI does; the run's ID."""
    selector = {
        "repositoryLocationName": LOCATION_NAME,
        "repositoryName": "__repository__",
        "jobName": "__ASSET_JOB",
        "assetSelection": [],
        "assetCheckSelection": [{"assetKey": {"path": SYNCED_DATASET.path}, "name": MATCHES_SDA_CHECK}],
    }
    params = {
        "selector": selector,
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": dataset_id}]},
    }
    launched = graphql(url, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def check_run_evaluation(instance: dg.DagsterInstance, dataset_id: str, run_id: str) -> dg.AssetCheckEvaluation:
    """The dataset's latest check result, which must come from run `run_id`."""
    record = latest_check_record(instance, dataset_id)
    assert record is not None and record.event is not None, f"no check result for {dataset_id}"
    assert record.run_id == run_id, "the latest check result is not the launched run's"
    evaluation = record.event.asset_check_evaluation
    assert evaluation is not None
    return evaluation


def test_a_datasets_check_runs_alone_from_the_ui(ui_node: Node, start_webserver, tmp_path: Path) -> None:
    node = ui_node
    node.database_user = SDA_DB_DATASETS_USER  # the check reads the dataset's files from sda.datasets
    node.extra_env = {"BROKER_QUEUE": f"{node.prefix}-absent", "BROKER_EXCHANGE": f"{node.prefix}-absent"}
    dataset_id = node.dataset_id("checked")
    files = node.add_dataset(dataset_id, [(f"checked/f{index}.c4gh", os.urandom(2000 + index)) for index in range(2)])
    assert node.sync_mapped(dataset_id).returncode == 0
    instance = node.instance()

    daemon = Daemon(node.environment(), tmp_path / "daemon.log")
    daemon.start()
    try:
        url = start_webserver(node).url
        intact_run = launch_check(url, dataset_id)
        intact_status = finished_status(url, intact_run)
        intact = check_run_evaluation(instance, dataset_id, intact_run)

        (node.sync_dir / files[1].path).unlink()
        drifted_run = launch_check(url, dataset_id)
        drifted_status = finished_status(url, drifted_run)
        drifted = check_run_evaluation(instance, dataset_id, drifted_run)
    finally:
        daemon.kill()

    assert intact_status == "SUCCESS" and intact.passed, daemon.log()[-5000:]
    assert drifted_status == "SUCCESS" and not drifted.passed
    assert drifted.metadata["problems"].value == [
        f"{files[1].accession_id} ({files[1].path}): missing from sync storage"
    ]
    assert instance.get_run_by_id(drifted_run).tags["dagster/partition"] == dataset_id
