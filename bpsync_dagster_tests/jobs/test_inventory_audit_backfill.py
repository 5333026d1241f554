"""What is in sync, the Dagster way: every sync materializes its dataset's partition of
`synced_dataset`; `audit_sync` finds objects that went missing or changed and records them as failed
checks; with its re-sync flag the `drift_resync` sensor requests runs of the drifted partitions, and
`bpsync backfill` makes a Dagster partition backfill of the datasets never synced, whose runs the
daemon submits to the run queue and works off."""

import os
from pathlib import Path

import dagster as dg
import pytest

from bpsync_dagster.inventory import SYNCED_DATASET, syncs_a_dataset
from bpsync_dagster.jobs.audit_sync import audit_sync
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster.runs.launch import LAUNCHED_BY_TAG
from bpsync_dagster.sensors import drift_resync
from bpsync_dagster_tests.support.asset_checks import latest_check_evaluation
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import SDA_DB_DATASETS_USER, Node, SeededFile


def latest_check(instance: dg.DagsterInstance, dataset_id: str) -> dg.AssetCheckEvaluation:
    evaluation = latest_check_evaluation(instance, dataset_id)
    assert evaluation is not None, f"no check result for {dataset_id}"
    return evaluation


def run_audit(
    instance: dg.DagsterInstance, resync_drifted: bool = False, verify_checksums: bool = False
) -> dict[str, list[str]]:
    config = {"resync_drifted": resync_drifted, "verify_checksums": verify_checksums}
    result = audit_sync.execute_in_process(
        instance=instance, resources=RESOURCES, run_config={"ops": {"audit_sync_storage": {"config": config}}}
    )
    assert result.success
    return result.output_for_node("audit_sync_storage")


def latest_materialization(instance: dg.DagsterInstance, dataset_id: str) -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SYNCED_DATASET, asset_partitions=[dataset_id]), limit=1
    ).records
    assert records, f"no materialization of {dataset_id}"
    return records[0].asset_materialization


def sync_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs of `sync_dataset` and of Dagster's asset job (the backfill's)."""
    return [run for run in instance.get_runs() if syncs_a_dataset(run)]


def queued_datasets_runs(instance: dg.DagsterInstance, launched_by: str) -> list[dg.DagsterRun]:
    return [run for run in sync_runs(instance) if run.tags.get(LAUNCHED_BY_TAG, "").startswith(launched_by)]


def queued_datasets(instance: dg.DagsterInstance, launched_by: str) -> set[str]:
    return {run.tags["dagster/partition"] for run in queued_datasets_runs(instance, launched_by)}


def backfill_lines(stdout: str) -> list[str]:
    """What `bpsync backfill` printed, without the log lines."""
    return [line for line in stdout.splitlines() if line.startswith(("bpsync: ", "  "))]


def test_audit_finds_drift_resyncs_it_and_backfill_syncs_only_what_never_was(
    make_isolated_node, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    node: Node = make_isolated_node("posix", "posix")
    node.database_user = SDA_DB_DATASETS_USER  # audit and backfill list the local datasets
    node.extra_env = {"SYNC_CENTERPREFIX": f"SYNC-{node.prefix}-"}
    instance = node.configure_this_process(monkeypatch)
    datasets: dict[str, list[SeededFile]] = {}
    for name, count in (("deleted", 2), ("truncated", 2), ("intact", 1), ("never", 1)):
        dataset_id = node.dataset_id(name)
        datasets[dataset_id] = node.add_dataset(
            dataset_id, [(f"{name}/f{index}.c4gh", os.urandom(3000 + index)) for index in range(count)]
        )
    deleted, truncated, intact, never = datasets
    for dataset_id in (deleted, truncated, intact):
        assert node.sync_mapped(dataset_id).returncode == 0

    assert instance.get_materialized_partitions(SYNCED_DATASET) == {deleted, truncated, intact}
    metadata = latest_materialization(instance, deleted).metadata
    objects = [node.sync_dir / item.path for item in datasets[deleted]]
    assert metadata["files"].value == 2
    assert metadata["total_bytes"].value == sum(path.stat().st_size for path in objects)
    assert metadata["sync_locations"].value == str(node.sync_dir)
    assert metadata["remote_http_status"].value == 200
    assert len(metadata["manifest_sha256"].value) == 64 and metadata["run_seconds"].value > 0

    missing_object = node.sync_dir / datasets[deleted][1].path
    missing_object.unlink()
    short_object = node.sync_dir / datasets[truncated][0].path
    short_object.write_bytes(short_object.read_bytes()[:-100])

    summary = run_audit(instance)

    assert summary == {"in_sync": [intact], "drifted": [deleted, truncated], "never_synced": [never]}
    deleted_check, truncated_check = latest_check(instance, deleted), latest_check(instance, truncated)
    assert not deleted_check.passed and not truncated_check.passed
    assert deleted_check.metadata["problems"].value == [
        f"{datasets[deleted][1].accession_id} ({datasets[deleted][1].path}): missing from sync storage"
    ]
    (problem,) = truncated_check.metadata["problems"].value
    assert problem.startswith(
        f"{datasets[truncated][0].accession_id} ({datasets[truncated][0].path}): {short_object} is "
    )
    assert latest_check(instance, intact).passed
    assert not latest_check(instance, never).passed and "never synced" in latest_check(instance, never).description

    intact_object = node.sync_dir / datasets[intact][0].path
    original = intact_object.read_bytes()
    intact_object.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit of the body
    assert run_audit(instance)["in_sync"] == [intact]
    assert run_audit(instance, verify_checksums=True)["drifted"] == sorted([deleted, truncated, intact])
    (problem,) = latest_check(instance, intact).metadata["problems"].value
    assert problem.startswith(
        f"{datasets[intact][0].accession_id} ({datasets[intact][0].path}): {intact_object}: body sha256 "
    )
    assert problem.endswith(" is not the ARCHIVED checksum")
    intact_object.write_bytes(original)

    assert drift_resync(dg.build_sensor_context(instance=instance)).run_requests == []
    run_audit(instance, resync_drifted=True)
    resync = drift_resync(dg.build_sensor_context(instance=instance))
    assert sorted(request.partition_key for request in resync.run_requests) == [deleted, truncated]
    assert {request.tags[LAUNCHED_BY_TAG] for request in resync.run_requests} == {
        f"audit_sync run {resync.run_requests[0].run_key.split(':')[1]}"
    }

    dry_run = node.bpsync("backfill", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stderr
    # The drifted datasets were synced before: a backfill lists only the one never synced.
    assert backfill_lines(dry_run.stdout) == [
        "bpsync: 4 local datasets, 1 not synced ever",
        f"  {never}: would be synced",
    ]
    backfill = node.bpsync("backfill")
    assert backfill.returncode == 0, backfill.stderr
    (submitted,) = instance.get_backfills()
    assert backfill_lines(backfill.stdout) == [
        "bpsync: 4 local datasets, 1 not synced ever",
        f"  {never}: to be synced",
        f"bpsync: backfill {submitted.backfill_id} of 1 datasets submitted; the daemon queues its runs and "
        "launches them within the run queue's limits",
    ]
    assert submitted.asset_selection == [SYNCED_DATASET] and submitted.tags[LAUNCHED_BY_TAG] == "bpsync backfill"

    with Daemon(node.environment(), tmp_path / "daemon.log"):
        wait_until(
            lambda: (
                queued_datasets(instance, "audit_sync") == {deleted, truncated}
                and queued_datasets(instance, "bpsync backfill") == {never}
                and all(run.is_finished for run in sync_runs(instance))
            ),
            180,
            "the re-syncs of the drifted datasets and the backfill",
        )

    assert {run.status for run in sync_runs(instance)} == {dg.DagsterRunStatus.SUCCESS}
    assert len(queued_datasets_runs(instance, "audit_sync")) == 2
    assert [run.tags["dagster/partition"] for run in queued_datasets_runs(instance, "bpsync backfill")] == [never]

    assert missing_object.exists() and node.decrypt_synced(datasets[deleted][1].path) == datasets[deleted][1].plaintext
    assert node.decrypt_synced(datasets[truncated][0].path) == datasets[truncated][0].plaintext
    assert node.decrypt_synced(datasets[never][0].path) == datasets[never][0].plaintext
    assert run_audit(instance) == {"in_sync": sorted(datasets), "drifted": [], "never_synced": []}
    again = node.bpsync("backfill")
    assert backfill_lines(again.stdout) == [
        "bpsync: 4 local datasets, 0 not synced ever",
        "bpsync: nothing to backfill",
    ]
    since = node.bpsync("backfill", "--dry-run", "--since", "2999-01-01")
    assert backfill_lines(since.stdout)[0] == "bpsync: 4 local datasets, 4 not synced since 2999-01-01T00:00:00+00:00"
    assert sorted(backfill_lines(since.stdout)[1:]) == sorted(
        f"  {dataset_id}: would be synced" for dataset_id in datasets
    )
