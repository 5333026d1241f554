"""What a failed run reports: an info-error for a sync that failed (whose partition shows as failed), nothing for a
run whose process died after its manifest was delivered (the dataset is synced), and a failure that
happens while the broker is down is reported once it is back, exactly once."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorCursor
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.tags import (
    MAX_RETRIES_TAG,
    RETRY_ON_ASSET_OR_OP_FAILURE_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)

from bpsync_dagster.inventory import DATASET_PARTITIONS, SYNCED_DATASET
from bpsync_dagster.resources import BrokerResource, ServiceSettingsResource
from bpsync_dagster.runs.launch import create_sync_run
from bpsync_dagster.sensors import failed_sync_reporter
from bpsync_dagster.sensors.failed_sync_reporter import REPORTED_TAG
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.private_rabbitmq import PrivateRabbitMQ
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.sensor_state import sensor_cursor, sensor_state
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor


def report(instance: dg.DagsterInstance, run_id: str) -> dg.SensorResult:
    """A tick of the reporter whose cursor stands just before the run's failure."""
    (failure,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    cursor = RunStatusSensorCursor(record_id=failure.storage_id - 1).to_json()
    # A resource with a nested resource is set up and torn down around the tick: a context manager.
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"broker": BrokerResource(service_settings=ServiceSettingsResource())},
    ) as context:
        return failed_sync_reporter(context)


def test_a_failed_sync_gets_an_info_error_and_its_partition_shows_as_failed(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        failed = sensor_node.sync_with_a_missing_body("reported")
        assert failed.result.returncode == 1

        report(instance, failed.run_id)

        ((body, _),) = names.error_messages()
    assert body["error"] == "Dataset sync failed in sync service"
    assert failed.dataset_id in body["reason"] and failed.files[-1].accession_id in body["reason"]
    status = instance.get_status_by_partition(SYNCED_DATASET, [failed.dataset_id], DATASET_PARTITIONS)
    assert status == {failed.dataset_id: dg.AssetPartitionStatus.FAILED}


def test_a_run_that_died_after_delivering_its_manifest_reports_nothing(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        dataset_id = sensor_node.dataset_id("delivered")
        sensor_node.add_dataset(dataset_id, [("delivered.c4gh", b"delivered" * 40)])
        synced = sensor_node.sync_mapped(dataset_id)
        assert synced.returncode == 0, synced.stderr
        run_id = synced.stdout.split(" run ", 1)[1].split()[0]
        # As when the process is killed between the last step and the run's success.
        instance.report_run_failed(instance.get_run_by_id(run_id), "the run's process is gone")

        report(instance, run_id)

        assert names.error_messages() == []
    status = instance.get_status_by_partition(SYNCED_DATASET, [dataset_id], DATASET_PARTITIONS)
    assert status == {dataset_id: dg.AssetPartitionStatus.MATERIALIZED}


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    with PrivateRabbitMQ(tmp_path_factory.mktemp("private-rabbitmq")) as broker:
        yield broker


def _reporter_ticked_since(instance: dg.DagsterInstance, since: float) -> bool:
    state = sensor_state(instance, failed_sync_reporter.name)
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10) if state else []
    return any(tick.timestamp > since and tick.status != TickStatus.STARTED for tick in ticks)


def test_a_sync_that_fails_while_the_broker_is_down_is_reported_once_it_is_back(
    private_broker: PrivateRabbitMQ, make_isolated_node, tmp_path: Path
) -> None:
    node: Node = make_isolated_node()
    names = Topology(
        f"{node.prefix}-sda",
        f"{node.prefix}-mapping_stream",
        f"{node.prefix}-errors",
        private_broker.connection_parameters(),
    )
    names.declare("stream")
    node.extra_env = {
        "BROKER_QUEUE": names.mapping_queue,
        "BROKER_EXCHANGE": names.exchange,
        "BROKER_PORT": str(private_broker.port),
    }
    instance = node.instance()
    with Daemon(node.environment(), tmp_path / "daemon.log"):
        wait_until(lambda: sensor_cursor(instance, failed_sync_reporter.name), 90, "the reporter's first tick")
        private_broker.stop()
        failed = node.sync_with_a_missing_body("broker-down")
        assert failed.result.returncode == 1
        failed_at = time.time()
        wait_until(lambda: _reporter_ticked_since(instance, failed_at), 60, "a reporter tick while the broker is down")

        private_broker.start(queues=[names.mapping_queue, names.error_queue])
        wait_until(names.error_count, 60, "the info-error once the broker is back")
        time.sleep(12)  # two more reporter ticks: nothing is reported twice

    ((body, _),) = names.error_messages()
    assert body["error"] == "Dataset sync failed in sync service"
    assert failed.dataset_id in body["reason"] and failed.run_id in body["reason"]


def test_a_failed_run_that_will_be_retried_is_reported_only_once_its_last_retry_fails(
    make_isolated_node, monkeypatch, tmp_path: Path
) -> None:
    """A run retried by Dagster's run retries (`dagster/max_retries`) fails twice under the real
    daemon: only the retry's failure, the last, is reported."""
    node: Node = make_isolated_node()
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        instance = node.configure_this_process(monkeypatch)
        dataset_id = node.dataset_id("retried")
        files = node.add_dataset(dataset_id, [(f"f{index}.c4gh", os.urandom(1000 + index)) for index in range(2)])
        node.archived_body_path(files[-1].accession_id).unlink()
        with Daemon(node.environment(), tmp_path / "daemon.log"):
            wait_until(lambda: sensor_cursor(instance, failed_sync_reporter.name), 90, "the reporter's first tick")
            first = create_sync_run(
                instance, dataset_id, [], 4, {MAX_RETRIES_TAG: "1", RETRY_ON_ASSET_OR_OP_FAILURE_TAG: "true"}
            )
            instance.submit_run(first.run_id, workspace=None)

            def finished_retry() -> dg.DagsterRun | None:
                retries = instance.get_runs(dg.RunsFilter(tags={ROOT_RUN_ID_TAG: first.run_id}))
                return next((run for run in retries if run.is_finished and WILL_RETRY_TAG in run.tags), None)

            retry = wait_until(finished_retry, 240, "the failed retry of the failed run")
            wait_until(names.error_count, 60, "the info-error of the last retry")
            reported_at = time.time()
            wait_until(lambda: _reporter_ticked_since(instance, reported_at), 60, "one more reporter tick")

        failed_first = instance.get_run_by_id(first.run_id)
        assert failed_first is not None and failed_first.status == dg.DagsterRunStatus.FAILURE
        assert failed_first.tags[WILL_RETRY_TAG] == "true" and REPORTED_TAG not in failed_first.tags
        assert retry.status == dg.DagsterRunStatus.FAILURE and retry.tags[WILL_RETRY_TAG] == "false"
        ((body, _),) = names.error_messages()
    assert body["reason"].startswith(f"dataset {dataset_id}: run {retry.run_id} failed: ")
    assert first.run_id not in body["reason"]
