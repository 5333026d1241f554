"""The whole service with the real `dagster-daemon`: messages in, synced datasets and error messages out."""

import json
import re
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import RUN_KEY_TAG

from bpsync_dagster_tests.support.daemon import Daemon, wait_for_count, wait_until
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.sensor_state import cursor_on, received_datasets, runs_of, sensor_state


def _mapping(dataset_id: str, accession_ids: list[str]) -> dict:
    return {"type": "mapping", "dataset_id": dataset_id, "accession_ids": accession_ids}


def test_a_published_mapping_is_synced_even_when_published_while_the_daemon_is_down(
    make_isolated_node, tmp_path: Path
) -> None:
    node: Node = make_isolated_node("posix", "posix")
    synced_live = node.add_dataset(node.dataset_id("live"), [("live.c4gh", b"live" * 50)])
    synced_later = node.add_dataset(node.dataset_id("later"), [("later.c4gh", b"later" * 50)])
    failing = node.add_dataset(node.dataset_id("failing"), [("failing.c4gh", b"fail")])
    node.archived_body_path(failing[0].accession_id).unlink()
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        instance = node.instance()
        daemon = Daemon(node.environment(), tmp_path / "daemon.log")
        daemon.start()
        try:
            wait_until(lambda: cursor_on(instance, names.mapping_queue), 90, "the sensor's first tick")
            names.publish(_mapping(node.dataset_id("live"), [synced_live[0].accession_id]), correlation_id="corr-live")
            wait_until(lambda: node.dataset_id("live") in received_datasets(node), 120, "the live dataset's manifest")
            wait_until(lambda: all(run.is_finished for run in runs_of(instance, names.mapping_queue)), 30, "its run")

            daemon.stop()
            names.publish(
                _mapping(node.dataset_id("later"), [synced_later[0].accession_id]), correlation_id="corr-later"
            )
            daemon.start()
            wait_until(
                lambda: node.dataset_id("later") in received_datasets(node), 120, "the dataset published while down"
            )

            names.publish(
                _mapping(node.dataset_id("failing"), [failing[0].accession_id]), correlation_id="corr-failing"
            )
            errors = wait_until(names.error_messages, 120, "the failed sync's info-error")
            wait_until(
                lambda: all(run.is_finished for run in runs_of(instance, names.mapping_queue)), 30, "runs to finish"
            )
            errors += names.error_messages()
        finally:
            daemon.kill()

        runs = runs_of(instance, names.mapping_queue)
        assert Counter(run.status for run in runs) == {dg.DagsterRunStatus.SUCCESS: 2, dg.DagsterRunStatus.FAILURE: 1}
        assert {run.tags["correlation_id"] for run in runs} == {"corr-live", "corr-later", "corr-failing"}
        for item in (*synced_live, *synced_later):
            assert node.decrypt_synced(item.path) == item.plaintext
        ((body, properties),) = errors
        assert properties.correlation_id == "corr-failing"
        assert body["error"] == "Dataset sync failed in sync service"
        assert node.dataset_id("failing") in body["reason"] and "does not exist" in body["reason"]
        assert json.loads(body["original-message"])["dataset_id"] == node.dataset_id("failing")


@pytest.mark.timeout(1500)  # the runs are waited for while their number grows; a stall of 120 s fails
@pytest.mark.parametrize(("kind", "messages", "kill_after"), [("stream", 500, 120), ("classic", 150, 60)])
def test_every_message_ends_in_exactly_one_run_across_a_daemon_crash(
    make_isolated_node, tmp_path: Path, kind: str, messages: int, kill_after: int
) -> None:
    """Messages waiting; the daemon is killed (SIGKILL) while it works through them, then restarted.

    The instance launches no runs here (max_concurrent_runs 0): the runs the sensor creates are counted.
    """
    node: Node = make_isolated_node(max_concurrent_runs=0)
    with topology(node.prefix, kind) as names:
        node.extra_env = {
            "BROKER_QUEUE": names.mapping_queue,
            "BROKER_EXCHANGE": names.exchange,
            "SYNC_SENSOR_STREAMSTART": "first",
        }
        for number in range(messages):
            names.publish(_mapping(node.dataset_id(f"many-{number:04d}"), [f"ACC-{number}"]))
        instance = node.instance()
        daemon = Daemon(node.environment(), tmp_path / "daemon.log")

        def run_count() -> int:
            return len(runs_of(instance, names.mapping_queue))

        daemon.start()
        try:
            wait_for_count(run_count, kill_after, 120, "the first runs", describe=daemon.problems)
            daemon.kill()
            daemon.start()
            wait_for_count(run_count, messages, 120, "a run for every message", describe=daemon.problems)
            if kind == "classic":
                wait_until(lambda: names.ready_count() == 0, 60, "every classic message to be acked")
            wait_until(lambda: _cursor_settled(instance, names, kind, messages), 60, "the sensor to settle")
        finally:
            daemon.kill()

        runs = runs_of(instance, names.mapping_queue)
        per_key = Counter(run.tags[RUN_KEY_TAG] for run in runs)
        assert len(per_key) == messages and set(per_key.values()) == {1}
        assert len({run.tags["dataset_id"] for run in runs}) == messages
        evaluations = [
            float(seconds) for seconds in re.findall(r"mapping sensor: .*; evaluated in ([0-9.]+) s", daemon.log())
        ]
        assert evaluations and max(evaluations) < 10, f"evaluations took up to {max(evaluations)} s"
        state = sensor_state(instance)
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=200)
        longest = max(tick.end_timestamp - tick.timestamp for tick in ticks if tick.end_timestamp)
        assert longest < 60, f"a tick, with the creation of its runs, took {longest:.1f} s"


def _cursor_settled(instance: dg.DagsterInstance, names: Topology, kind: str, messages: int) -> bool:
    cursor = cursor_on(instance, names.mapping_queue)
    return cursor is not None and (kind == "classic" or cursor["offset"] == messages - 1)
