"""What the daemon left in a Dagster instance: a sensor's state and cursor, the mapping sensor's runs."""

import json

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorState, InstigatorType
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.environment import Node


def sensor_state(instance: dg.DagsterInstance, name: str = MAPPING_SENSOR_NAME) -> InstigatorState | None:
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return next((state for state in states if state.name == name), None)


def sensor_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    state = sensor_state(instance, name)
    return state.instigator_data.cursor if state and state.instigator_data else None


def cursor_on(instance: dg.DagsterInstance, queue: str) -> dict | None:
    """The mapping sensor's cursor, once it reads `queue`."""
    cursor = sensor_cursor(instance, MAPPING_SENSOR_NAME)
    data = json.loads(cursor) if cursor else None
    return data if data and data.get("queue") == queue else None


def runs_of(instance: dg.DagsterInstance, queue: str) -> list[dg.DagsterRun]:
    """The runs the mapping sensor made for messages of `queue`."""
    runs = instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}))
    return [run for run in runs if run.tags.get(RUN_KEY_TAG, "").startswith(f"{queue}:")]


def received_datasets(node: Node) -> set[str]:
    return {body["dataset_id"] for body in node.remote.received}
