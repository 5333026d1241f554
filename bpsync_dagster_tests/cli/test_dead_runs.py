"""A `bpsync sync` killed mid-run: its run is failed (by `bpsync reexecute` or the dead-run sensor),
never while the process is alive, and re-executing it finishes the dataset."""

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from bpsync_dagster.sensors import dead_run_reaper
from bpsync_dagster_tests.support.daemon import wait_until
from bpsync_dagster_tests.support.environment import Node, SeededFile
from bpsync_dagster_tests.support.faults import read_until, run_id_of, start_bpsync

HANG_SECONDS = 25.0


@contextmanager
def sync_hanging_on_the_post(node: Node, name: str) -> Iterator[tuple[subprocess.Popen[str], str, list[SeededFile]]]:
    """A `bpsync sync` process whose files are copied and whose POST waits on a hanging remote."""
    dataset_id = node.dataset_id(name)
    files = node.add_dataset(dataset_id, [(f"{name}/{index}.c4gh", os.urandom(2000 + index)) for index in range(2)])
    attempts = node.remote.attempts
    node.remote.fail_next_by_hanging(1, HANG_SECONDS)
    process = start_bpsync(node, *node.sync_arguments(dataset_id))
    try:
        run_id = run_id_of("".join(read_until(process, " run ")))
        assert len(run_id) == 36, run_id
        wait_until(lambda: node.remote.attempts > attempts, 60, "the POST of the sync")
        yield process, run_id, files
    finally:
        process.kill()
        process.wait()


def test_reexecute_refuses_a_live_run_and_fails_then_finishes_a_killed_one(make_node) -> None:
    node: Node = make_node("posix", "posix")
    with sync_hanging_on_the_post(node, "killed-cli") as (process, run_id, files):
        refused = node.bpsync("reexecute", run_id)
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"bpsync: run {run_id} is STARTED and its process is alive or not on this host: "
            "wait for it to end, or terminate it in the Dagster UI"
        )
        process.kill()
        process.wait()
        assert node.instance().get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

        resumed = node.bpsync("reexecute", run_id)

    assert resumed.returncode == 0, resumed.stderr
    gone = f"bpsync: run {run_id} was marked failed: its process (pid {process.pid} on {socket.gethostname()}) is gone"
    assert gone in resumed.stderr
    # The files were copied before the kill: only the POST is executed again.
    assert "  post_manifest done" in resumed.stdout and "copy_files" not in resumed.stdout
    assert node.instance().get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext


def test_the_dead_run_sensor_fails_only_runs_whose_process_is_gone(make_node) -> None:
    node: Node = make_node("posix", "posix")
    instance = node.instance()
    with sync_hanging_on_the_post(node, "killed-sensor") as (process, run_id, _):
        alive = dead_run_reaper(dg.build_sensor_context(instance=instance))
        assert run_id not in str(alive.skip_message)
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
        process.kill()
        process.wait()

        reaped = dead_run_reaper(dg.build_sensor_context(instance=instance))

    assert f"marked failed: {run_id}" in str(reaped.skip_message)
    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    failure = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    assert f"the process executing this run (pid {process.pid} on {socket.gethostname()}) is gone" in failure.message
