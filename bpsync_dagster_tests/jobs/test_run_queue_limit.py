"""The run queue of the shipped dagster.yaml holds its `max_concurrent_runs`: the runs of a backfill
of more datasets than the limit are launched by the real daemon no more than the limit at a time, and
all end synced."""

from pathlib import Path

import dagster as dg
import pytest

from bpsync_dagster.inventory import syncs_a_dataset
from bpsync_dagster.runs.launch import LAUNCHED_BY_TAG, create_sync_run
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import SDA_DB_DATASETS_USER, Node

LIMIT = 2
DATASETS = 5
POST_SECONDS = 2.0  # each run's manifest POST is held this long, so that runs last and overlap


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment; one ending when another starts does not overlap it."""
    moments = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = most = 0
    for _, change in moments:
        open_now += change
        most = max(most, open_now)
    return most


@pytest.mark.parametrize(
    ("intervals", "most"),
    [
        ([], 0),
        ([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)], 1),
        ([(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)], 2),
        ([(0.0, 9.0), (1.0, 2.0), (3.0, 4.0), (3.5, 5.0)], 3),
    ],
)
def test_max_overlap_counts_intervals_open_together(intervals: list[tuple[float, float]], most: int) -> None:
    assert max_overlap(intervals) == most


def launched_until_done(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """From the queue's launch of the run (RUN_STARTING: it then counts toward the limit) to its success."""
    (starting,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    (success,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    return starting.timestamp, success.timestamp


def test_queued_syncs_run_no_more_than_max_concurrent_runs_at_once(make_isolated_node, tmp_path: Path) -> None:
    node: Node = make_isolated_node(max_concurrent_runs=LIMIT)
    node.database_user = SDA_DB_DATASETS_USER  # backfill lists the local datasets
    node.extra_env = {"SYNC_CENTERPREFIX": f"SYNC-{node.prefix}-"}
    files = [
        item
        for number in range(DATASETS)
        for item in node.add_dataset(node.dataset_id(f"queued-{number}"), [(f"queued-{number}.c4gh", b"q" * 2000)])
    ]
    node.remote.fail_next_by_hanging(DATASETS, POST_SECONDS)
    backfill = node.bpsync("backfill")
    assert backfill.returncode == 0, backfill.stderr
    instance = node.instance()

    def finished_runs() -> list[dg.DagsterRun]:
        runs = [run for run in instance.get_runs() if syncs_a_dataset(run)]
        return runs if len(runs) == DATASETS and all(run.is_finished for run in runs) else []

    with Daemon(node.environment(), tmp_path / "daemon.log"):
        runs = wait_until(finished_runs, 120, "the backfill's runs to finish")

    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * DATASETS
    assert {run.tags[LAUNCHED_BY_TAG] for run in runs} == {"bpsync backfill"}
    overlap = max_overlap([launched_until_done(instance, run.run_id) for run in runs])
    assert overlap == LIMIT, f"{overlap} runs were in progress at once with max_concurrent_runs {LIMIT}"
    assert node.remote.faults_pending == 0
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext


def test_runs_of_one_dataset_wait_for_each_other_while_another_dataset_runs_beside_them(
    make_isolated_node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped limit on `dagster/partition`: never two runs of one dataset at once, whoever queued them."""
    node: Node = make_isolated_node(max_concurrent_runs=10)
    repeated, other = node.dataset_id("repeated"), node.dataset_id("other")
    files = {
        repeated: node.add_dataset(repeated, [("repeated.c4gh", b"r" * 2000)]),
        other: node.add_dataset(other, [("o.c4gh", b"o")]),
    }
    node.remote.fail_next_by_hanging(4, POST_SECONDS)
    instance = node.configure_this_process(monkeypatch)
    runs = [
        create_sync_run(instance, dataset_id, [item.accession_id for item in files[dataset_id]], 4)
        for dataset_id in (repeated, repeated, repeated, other)
    ]
    for run in runs:
        instance.submit_run(run.run_id, workspace=None)

    with Daemon(node.environment(), tmp_path / "daemon.log"):
        wait_until(
            lambda: all(run.is_finished for run in instance.get_runs(dg.RunsFilter(job_name="sync_dataset"))),
            120,
            "the queued runs to finish",
        )

    finished = instance.get_runs(dg.RunsFilter(job_name="sync_dataset"))
    failures = [
        entry.message
        for run in finished
        for entry in instance.all_logs(
            run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
        )
    ]
    assert [run.status for run in finished] == [dg.DagsterRunStatus.SUCCESS] * 4, failures
    intervals = {run.run_id: launched_until_done(instance, run.run_id) for run in finished}
    assert max_overlap([intervals[run.run_id] for run in runs[:3]]) == 1, "two runs of one dataset overlapped"
    assert max_overlap(list(intervals.values())) == 2, "the other dataset waited for the repeated one"
    for item in [*files[repeated], *files[other]]:
        assert node.decrypt_synced(item.path) == item.plaintext
