"""The real `dagster-daemon` behind a delaying proxy: every answer of the broker 1 s late and its frames
handed on 0.6 s apart (a loaded node or a congested link). A dataset published to the stream
is still synced, by exactly one run, and no tick comes near the sensor's 60 s evaluation limit."""

import json
import re
from pathlib import Path

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorType
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.delaying_proxy import DelayingProxy, Pacing
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import mapping


def _cursor(instance: dg.DagsterInstance, queue: str) -> dict | None:
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    state = next((state for state in states if state.name == MAPPING_SENSOR_NAME), None)
    text = state.instigator_data.cursor if state and state.instigator_data else None
    cursor = json.loads(text) if text else None
    return cursor if cursor and cursor.get("queue") == queue else None


def _runs(instance: dg.DagsterInstance, queue: str) -> list[dg.DagsterRun]:
    runs = instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}))
    return [run for run in runs if run.tags.get(RUN_KEY_TAG, "").startswith(f"{queue}:")]


def test_a_dataset_published_to_the_stream_is_synced_through_a_slow_broker(make_isolated_node, tmp_path: Path) -> None:
    node: Node = make_isolated_node()
    dataset_id = node.dataset_id("slow-broker")
    (seeded,) = node.add_dataset(dataset_id, [("slow.c4gh", b"slow broker " * 40)])
    with (
        topology(node.prefix, "stream") as names,
        DelayingProxy(5672, Pacing(delay=1.0, gap=0.6, by_frame=True)) as proxy,
    ):
        node.extra_env = {
            "BROKER_QUEUE": names.mapping_queue,
            "BROKER_EXCHANGE": names.exchange,
            "BROKER_PORT": str(proxy.port),
        }
        instance = node.instance()
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            wait_until(lambda: _cursor(instance, names.mapping_queue), 120, "the sensor's first tick")
            names.publish(mapping(dataset_id, seeded.accession_id), correlation_id="corr-slow")
            wait_until(
                lambda: any(body["dataset_id"] == dataset_id for body in node.remote.received),
                180,
                "the dataset's manifest",
            )
            wait_until(lambda: all(run.is_finished for run in _runs(instance, names.mapping_queue)), 60, "its run")
            log = daemon.log()

        (run,) = _runs(instance, names.mapping_queue)
        cursor = _cursor(instance, names.mapping_queue)
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["correlation_id"] == "corr-slow"
    assert run.tags[RUN_KEY_TAG] == f"{names.mapping_queue}:0:0"
    assert cursor is not None and (cursor["generation"], cursor["offset"]) == (0, 0)
    assert node.decrypt_synced(seeded.path) == seeded.plaintext
    evaluations = [float(seconds) for seconds in re.findall(r"mapping sensor: .*; evaluated in ([0-9.]+) s", log)]
    assert evaluations and max(evaluations) < 45, f"evaluations took up to {max(evaluations)} s"
