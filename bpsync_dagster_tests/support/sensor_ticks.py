"""Evaluate the mapping sensor's ticks in the test process, configured like the service."""

import json

import dagster as dg
import pytest
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.resources import BrokerResource, ServiceSettingsResource
from bpsync_dagster.sensors import MAPPING_SENSOR_NAME, build_mapping_sensor
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import Topology
from bpsync_dagster_tests.support.sync_job import partition_tags, sync_job


def configure_sensor(node: Node, monkeypatch: pytest.MonkeyPatch, names: Topology, **extra: str) -> dg.DagsterInstance:
    """Point the service's configuration at `names` (plus `extra` env) and return the Dagster instance."""
    node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange, **extra}
    return node.configure_this_process(monkeypatch)


def evaluate_tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    sensor = build_mapping_sensor(1)
    # A resource with a nested resource is set up and torn down around the tick: a context manager.
    broker = BrokerResource(service_settings=ServiceSettingsResource())
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"broker": broker}) as context:
        return sensor(context)


def evaluate_ticks(instance: dg.DagsterInstance, cursor: str | None, count: int) -> tuple[list[dg.RunRequest], str]:
    """The run requests of `count` ticks from `cursor`, and the cursor after them."""
    requests: list[dg.RunRequest] = []
    for _ in range(count):
        result = evaluate_tick(instance, cursor)
        assert result.cursor is not None, result.skip_reason
        requests += result.run_requests
        cursor = result.cursor
    assert cursor is not None
    return requests, cursor


def store_runs(instance: dg.DagsterInstance, result: dg.SensorResult) -> list[dg.DagsterRun]:
    """Create the runs a tick requested, as the daemon does (tagged with the run key and the sensor),
    except those whose run key Dagster already holds; none is launched."""
    runs = []
    for request in result.run_requests or []:
        tags = {RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}
        if not instance.get_run_ids(dg.RunsFilter(tags=tags), limit=1):
            tags.update(partition_tags(instance, request.partition_key))
            runs.append(
                instance.create_run_for_job(sync_job(), run_config=request.run_config, tags={**request.tags, **tags})
            )
    return runs


def mapping(dataset_id: str, *accession_ids: str) -> dict:
    return {"type": "mapping", "dataset_id": dataset_id, "accession_ids": list(accession_ids)}


def stream_position(cursor: str) -> dict:
    """The queue, kind, offset and generation of a cursor (without what it keeps to recognise the stream)."""
    data = json.loads(cursor)
    return {key: data[key] for key in ("queue", "kind", "offset", "generation")}
