"""The shipped run launcher under the real daemon on a Postgres instance: runs it forks succeed, and a
run whose worker is killed is failed by Dagster's run monitoring and retried, the daemon unharmed."""

import os
import signal
import socket
from pathlib import Path

import dagster as dg

from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.runs.liveness import process_alive, run_worker
from bpsync_dagster.runs.prefork_launcher import PreforkRunLauncher
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_state import cursor_on, received_datasets

HANG_SECONDS = 30.0


def _mapping(dataset_id: str, accession_ids: list[str]) -> dict:
    return {"type": "mapping", "dataset_id": dataset_id, "accession_ids": accession_ids}


def _runs(instance: dg.DagsterInstance, dataset_id: str) -> list[dg.DagsterRun]:
    """The dataset's runs, retries included, oldest first."""
    return list(reversed(instance.get_runs(dg.RunsFilter(tags={DATASET_TAG: dataset_id}))))


def test_forked_runs_succeed_and_a_killed_worker_is_failed_by_run_monitoring_and_retried(
    make_isolated_node, tmp_path: Path
) -> None:
    node: Node = make_isolated_node("posix", "posix")
    quick = node.add_dataset(node.dataset_id("forked"), [("forked.c4gh", b"forked" * 50)])
    killed = node.add_dataset(node.dataset_id("killed"), [("killed.c4gh", b"killed" * 50)])
    stopped = node.add_dataset(node.dataset_id("stopped"), [("stopped.c4gh", b"stopped" * 50)])
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        instance = node.instance()
        assert isinstance(instance.run_launcher, PreforkRunLauncher)
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            wait_until(lambda: cursor_on(instance, names.mapping_queue), 90, "the sensor's first tick")
            names.publish(_mapping(node.dataset_id("forked"), [quick[0].accession_id]))
            wait_until(lambda: node.dataset_id("forked") in received_datasets(node), 120, "the first manifest")
            (first,) = wait_until(
                lambda: [run for run in _runs(instance, node.dataset_id("forked")) if run.is_finished], 30, "its run"
            )

            attempts = node.remote.attempts
            node.remote.fail_next_by_hanging(1, HANG_SECONDS)
            names.publish(_mapping(node.dataset_id("killed"), [killed[0].accession_id]))
            wait_until(lambda: node.remote.attempts > attempts, 120, "the POST of the run to kill")
            (victim,) = _runs(instance, node.dataset_id("killed"))
            worker = run_worker(instance, victim.run_id)
            assert worker is not None and worker.host == socket.gethostname()
            assert process_alive(worker.pid, worker.reported_at)
            os.kill(worker.pid, signal.SIGKILL)

            wait_until(
                lambda: instance.get_run_by_id(victim.run_id).status == dg.DagsterRunStatus.FAILURE,
                30,
                "run monitoring to fail the killed run",
            )
            wait_until(
                lambda: any(
                    run.status == dg.DagsterRunStatus.SUCCESS for run in _runs(instance, node.dataset_id("killed"))
                ),
                120,
                "the retry of the killed run to succeed",
            )

            # Terminate, as the webserver's launcher does: the worker gets SIGTERM, which Dagster raises in
            # the step as an interruption (post_manifest's retry policy then tries the POST again).
            attempts = node.remote.attempts
            node.remote.fail_next_by_hanging(1, HANG_SECONDS)
            names.publish(_mapping(node.dataset_id("stopped"), [stopped[0].accession_id]))
            wait_until(lambda: node.remote.attempts > attempts, 120, "the POST of the run to terminate")
            (terminated,) = _runs(instance, node.dataset_id("stopped"))
            assert instance.run_launcher.terminate(terminated.run_id)
            wait_until(lambda: instance.get_run_by_id(terminated.run_id).is_finished, 60, "the terminated run")
            assert not instance.run_launcher.terminate(terminated.run_id)
            assert daemon.exit_status() is None, daemon.problems()

    assert first.status == dg.DagsterRunStatus.SUCCESS
    forked = [entry.message for entry in instance.all_logs(first.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
    assert any(message.startswith("Forked process ") for message in forked), forked
    failure = instance.all_logs(victim.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    assert f"the process executing this run ({worker.describe()}) is gone" in failure.message
    interrupted = [
        entry
        for entry in instance.all_logs(terminated.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)
        if "DagsterExecutionInterruptedError" in str(entry.dagster_event.event_specific_data)
    ]
    assert interrupted, "the terminated run's worker was not interrupted"
    retries = _runs(instance, node.dataset_id("killed"))[1:]
    assert [run.tags.get("dagster/parent_run_id") for run in retries] == [victim.run_id]
    for item in (*quick, *killed):
        assert node.decrypt_synced(item.path) == item.plaintext
