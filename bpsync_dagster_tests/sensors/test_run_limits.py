"""What happens to a message's run after the message is acked or passed: nothing may wait for ever.

On a classic queue, messages an earlier tick requested runs for and that wait for them do not
count toward `sync.sensor.batchSize`, so they cannot starve new messages. With the shipped
dagster.yaml, a run the sensor created but never queued is queued when the daemon resumes the tick
it died in, or else failed by run monitoring after `start_timeout_seconds` and run again by the run
retries; a queued run whose launch fails is retried too and, once every attempt has failed, reported
on the error routing key with the launch's error (real RabbitMQ, real Dagster instance, the real
daemon with a run queue whose faults the test chooses)."""

import json
import time
from collections import Counter
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.jobs.sync_dataset import sync_run_config
from bpsync_dagster.runs.launch import reconstructable_job, remote_origin
from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faulty_run_queue import ENQUEUE_DIES_ONCE, LAUNCH_FAILS, use_faulty_run_queue
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_state import cursor_on, received_datasets, runs_of
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, mapping, store_runs
from bpsync_dagster_tests.support.sync_job import partition_tags, sync_job


def test_classic_messages_waiting_for_their_runs_do_not_count_toward_the_batch(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "classic") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_BATCHSIZE="2")
        first = [sensor_node.dataset_id(f"first-{number}") for number in range(2)]
        for dataset_id in first:
            names.publish(mapping(dataset_id, "SYNC-F1"), message_id=dataset_id)

        requested = evaluate_tick(instance, None)
        assert [request.tags["dataset_id"] for request in requested.run_requests] == first

        # The daemon has not created those runs yet when the next tick reads the queue.
        second = [sensor_node.dataset_id(f"second-{number}") for number in range(2)]
        for dataset_id in second:
            names.publish(mapping(dataset_id, "SYNC-F1"), message_id=dataset_id)
        next_tick = evaluate_tick(instance, requested.cursor)

        assert Counter(request.tags["dataset_id"] for request in next_tick.run_requests) == Counter(first + second)
        store_runs(instance, next_tick)
        settled = evaluate_tick(instance, next_tick.cursor)
        assert settled.run_requests == [] and names.ready_count() == 0


def test_runs_never_queued_are_synced_and_one_whose_launch_fails_is_reported_once(
    make_isolated_node, tmp_path: Path
) -> None:
    """Three datasets: `orphan`'s run is NOT_STARTED with its message behind the cursor, the state a
    database outage during its enqueue leaves (the enqueue and the report of its failure both failed,
    then the tick ended); the daemon dies while queueing `crashed`'s run; every launch of
    `refused`'s runs fails."""
    node: Node = make_isolated_node()
    import_path = use_faulty_run_queue(node.dagster_home)
    datasets = {
        name: node.dataset_id(name + suffix)
        for name, suffix in (("orphan", ""), ("crashed", ENQUEUE_DIES_ONCE), ("refused", LAUNCH_FAILS))
    }
    files = {
        name: node.add_dataset(dataset_id, [(f"{name}.c4gh", name.encode() * 40)])
        for name, dataset_id in datasets.items()
    }
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange, **import_path}
        instance = node.instance()
        orphan = datasets["orphan"]
        names.publish(mapping(orphan, *node.dataset_files[orphan]), correlation_id="corr-orphan")
        instance.create_run_for_job(
            sync_job(),
            run_config=sync_run_config(node.dataset_files[orphan]),
            tags={
                **partition_tags(instance, orphan),
                "dataset_id": orphan,
                "correlation_id": "corr-orphan",
                RUN_KEY_TAG: f"{names.mapping_queue}:0:0",
                SENSOR_NAME_TAG: MAPPING_SENSOR_NAME,
            },
            remote_job_origin=remote_origin(),
            job_code_origin=reconstructable_job().get_python_origin(),
        )
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            wait_until(lambda: cursor_on(instance, names.mapping_queue), 90, "the sensor's first tick")
            for name in ("crashed", "refused"):
                dataset_id = datasets[name]
                names.publish(mapping(dataset_id, *node.dataset_files[dataset_id]), correlation_id=f"corr-{name}")
            wait_until(lambda: daemon.exit_status() is not None, 60, "the daemon to die while queueing a run")
            (left,) = instance.get_runs(dg.RunsFilter(tags={"dataset_id": datasets["crashed"]}))
            assert left.status == dg.DagsterRunStatus.NOT_STARTED
            daemon.start()

            synced = {datasets["orphan"], datasets["crashed"]}
            wait_until(lambda: synced <= received_datasets(node), 180, "the datasets whose runs were never queued")
            errors = wait_until(names.error_messages, 120, "the info-error of the dataset never launched")
            time.sleep(12)  # two more ticks of the reporter: nothing is reported twice
            errors += names.error_messages()

        assert (cursor_on(instance, names.mapping_queue) or {}).get("offset") == 2
        ((body, properties),) = errors
        assert properties.correlation_id == "corr-refused"
        assert body["error"] == "Dataset sync failed in sync service"
        assert datasets["refused"] in body["reason"] and "test fault: the launch of run" in body["reason"]
        assert json.loads(body["original-message"])["dataset_id"] == datasets["refused"]
        statuses = Counter((run.tags["dataset_id"], run.status) for run in runs_of(instance, names.mapping_queue))
        assert statuses == {
            (datasets["orphan"], dg.DagsterRunStatus.FAILURE): 1,  # by run monitoring: it never started
            (datasets["orphan"], dg.DagsterRunStatus.SUCCESS): 1,  # its retry
            (datasets["crashed"], dg.DagsterRunStatus.SUCCESS): 1,
            (datasets["refused"], dg.DagsterRunStatus.FAILURE): 3,  # the run and its two retries
        }
        for name in ("orphan", "crashed"):
            assert node.decrypt_synced(files[name][0].path) == files[name][0].plaintext
