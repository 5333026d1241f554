"""A run's worker counts as dead only while the run is unfinished: a sensor that listed the run as
STARTED before its worker wrote RUN_SUCCESS and exited must not fail it afterwards."""

import subprocess
import time

import dagster as dg

from bpsync_dagster.runs.launch import create_sync_run
from bpsync_dagster.runs.liveness import dead_worker, report_worker
from bpsync_dagster_tests.support.environment import Node


def test_a_gone_worker_is_dead_only_while_its_run_is_unfinished(make_node, monkeypatch) -> None:
    node: Node = make_node("posix", "posix")
    for name, value in node.environment().items():
        monkeypatch.setenv(name, value)
    instance = node.instance()
    (item,) = node.add_dataset(node.dataset_id("gone"), [("gone.c4gh", b"gone" * 20)])
    ended = subprocess.Popen(["true"])
    ended.wait()
    time.sleep(0.05)
    runs = []
    for _ in range(2):
        run = create_sync_run(instance, node.dataset_id("gone"), [item.accession_id], 1)
        report_worker(instance, run, ended.pid, "process {pid} on {host} executes this run")
        runs.append(run.with_status(dg.DagsterRunStatus.STARTED))
    unfinished, finished = runs
    instance.report_run_failed(instance.get_run_by_id(finished.run_id), "ended before the check")

    worker = dead_worker(instance, unfinished)
    assert worker is not None and worker.pid == ended.pid
    # `finished` as a sensor listed it (STARTED), ended since: its worker is not called dead.
    assert dead_worker(instance, finished) is None
