"""Poison messages on the mapping queue: valid by the schema, or too costly to check in full. None may
stop the sensor, vanish or reach a run: each gets exactly one info-error naming its cause in one
line, the sensor reads on past it, and the valid message after it is synced (real RabbitMQ; real
Dagster instance; ticks in the test process, then the real daemon)."""

import json
import re
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus

from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.poison import PoisonMessages, info_error_problem, poison_messages
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.sensor_state import cursor_on, received_datasets, runs_of, sensor_state
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, mapping, store_runs


def publish_poison_then_good(names: Topology, node: Node, good_dataset: str) -> PoisonMessages:
    poison = poison_messages(node.dataset_id)
    for correlation_id, (message, _) in poison.items():
        names.publish(message, correlation_id=correlation_id)
    names.publish(mapping(good_dataset, *node.dataset_files.get(good_dataset, ["SYNC-F1"])), correlation_id="good")
    return poison


def assert_one_info_error_each(names: Topology, poison: PoisonMessages) -> None:
    errors = names.error_messages()
    assert sorted(str(properties.correlation_id) for _, properties in errors) == sorted(map(str, poison))
    for published, properties in errors:
        assert info_error_problem(poison, properties.correlation_id, published) is None


@pytest.mark.parametrize("kind", ["stream", "classic"])
def test_poison_messages_get_one_info_error_each_and_no_run(sensor_node: Node, monkeypatch, kind: str) -> None:
    with topology(sensor_node.prefix, kind) as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        good_dataset = sensor_node.dataset_id("good")
        poison = publish_poison_then_good(names, sensor_node, good_dataset)

        started = time.monotonic()
        result = evaluate_tick(instance, None)
        elapsed = time.monotonic() - started

        assert elapsed < 30, f"the tick took {elapsed:.1f} s"
        assert [request.tags for request in result.run_requests] == [
            {"dataset_id": good_dataset, "correlation_id": "good"}
        ]
        store_runs(instance, result)
        assert_one_info_error_each(names, poison)

        later = evaluate_tick(instance, result.cursor)

        assert later.run_requests == [] and names.error_messages() == []
        if kind == "stream":
            assert json.loads(later.cursor)["offset"] == len(poison)
        else:
            assert names.ready_count() == 0


def test_with_the_daemon_poison_messages_are_reported_once_and_the_next_dataset_syncs(
    make_isolated_node, tmp_path: Path
) -> None:
    node: Node = make_isolated_node()
    good = node.add_dataset(node.dataset_id("after-poison"), [("after-poison.c4gh", b"after poison" * 40)])
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        instance = node.instance()
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            wait_until(lambda: cursor_on(instance, names.mapping_queue), 90, "the sensor's first tick")
            poison = publish_poison_then_good(names, node, node.dataset_id("after-poison"))

            wait_until(lambda: node.dataset_id("after-poison") in received_datasets(node), 120, "the good dataset")
            wait_until(lambda: names.error_count() >= len(poison), 30, "the info-errors")
            offset = wait_until(lambda: (cursor_on(instance, names.mapping_queue) or {}).get("offset"), 30, "cursor")
            time.sleep(12)  # two more ticks: nothing is reported again

        assert offset == len(poison)
        assert_one_info_error_each(names, poison)
        runs = runs_of(instance, names.mapping_queue)
        assert [(run.tags["dataset_id"], run.status) for run in runs] == [
            (node.dataset_id("after-poison"), dg.DagsterRunStatus.SUCCESS)
        ]
        assert node.decrypt_synced(good[0].path) == good[0].plaintext
        state = sensor_state(instance)
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100)
        assert [tick.status for tick in ticks if tick.status == TickStatus.FAILURE] == []
        evaluations = [float(seconds) for seconds in re.findall(r"; evaluated in ([0-9.]+) s", daemon.log())]
        assert max(evaluations) < 30, f"a tick took {max(evaluations)} s"
