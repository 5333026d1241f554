"""The CLI's output is for the operator: no Python warnings (and no site-packages paths) in it."""

import subprocess
import sys
from pathlib import Path

import pytest

from bpsync_dagster_tests.support.environment import SDA_DB_DATASETS_USER, Node


def _assert_quiet(result: subprocess.CompletedProcess[str], command: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`bpsync {command}`:\n{output}"
    assert "Warning" not in output, f"`bpsync {command}`:\n{output}"
    assert "site-packages" not in output, f"`bpsync {command}`:\n{output}"


def test_sync_and_a_backfill_dry_run_print_no_python_warning(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.database_user = SDA_DB_DATASETS_USER  # a backfill lists the local datasets
    node.extra_env = {"SYNC_CENTERPREFIX": f"SYNC-{node.prefix}-"}
    dataset_id = node.dataset_id("quiet")
    node.add_dataset(dataset_id, [("q.c4gh", b"q" * 100)])

    _assert_quiet(node.sync_mapped(dataset_id), "sync")
    _assert_quiet(node.bpsync("backfill", "--dry-run"), "backfill --dry-run")


@pytest.mark.parametrize(("executor", "executor_name"), [("in_process", "in_process"), ("celery", "bpsync_celery")])
def test_the_code_location_loads_with_dagster_preview_and_beta_warnings_as_errors(
    make_node, tmp_path: Path, executor: str, executor_name: str
) -> None:
    """In a fresh interpreter, as a code server loads it (`-W error::dagster.…` would be ignored: Python
    reads -W before dagster can be imported), with each executor's definitions."""
    node: Node = make_node()
    deployment = {
        "BPSYNC_EXECUTOR": executor,
        "BPSYNC_CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "BPSYNC_STEP_STORAGE": str(tmp_path / "steps"),
    }
    load = (
        "import warnings, dagster as dg\n"
        "warnings.simplefilter('error', dg.PreviewWarning)\n"
        "warnings.simplefilter('error', dg.BetaWarning)\n"
        "from bpsync_dagster.definitions import defs\n"
        "repository = defs().get_repository_def()\n"
        "repository.get_all_jobs(), repository.sensor_defs, repository.asset_checks_defs_by_key\n"
        "print(repository.get_job('sync_dataset').executor_def.name)\n"
    )
    environment = {**node.environment(), **deployment}
    result = subprocess.run([sys.executable, "-c", load], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [executor_name], result.stdout
    assert "Warning" not in result.stderr, result.stderr


def test_a_sync_prints_each_line_once_and_a_failed_one_its_cause_without_a_traceback(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("once")
    node.add_dataset(dataset_id, [("once.c4gh", b"o" * 100)])

    synced = node.sync_mapped(dataset_id)
    failed = node.sync_with_a_missing_body("loud").result

    assert synced.returncode == 0, synced.stderr
    assert synced.stderr.count(f"dataset {dataset_id}: manifest accepted by") == 1, synced.stderr
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "STEP_FAILURE" not in failed.stderr, failed.stderr
    (failure,) = [line for line in failed.stderr.splitlines() if "sync failed in step" in line]
    assert failure.startswith("bpsync: dataset ") and "does not exist" in failure
