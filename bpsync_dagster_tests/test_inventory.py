"""Which runs are sync runs, and the run config that carries a sync's files: pure logic the sensors,
the backfill and the failure reports rely on."""

import dagster as dg
import pytest

from bpsync_dagster.inventory import SYNCED_DATASET, syncs_a_dataset
from bpsync_dagster.jobs.sync_dataset import requested_accession_ids, sync_run_config
from bpsync_dagster.sensors.event_cursor import cursor_storage_id, event_cursor


def run_of(job_name: str, asset_selection: set[dg.AssetKey] | None = None) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=job_name, run_id="r1", asset_selection=asset_selection)


@pytest.mark.parametrize(
    ("run", "is_sync"),
    [
        (run_of("sync_dataset"), True),
        (run_of("__ASSET_JOB", {SYNCED_DATASET}), True),  # a backfill's run, or a materialization from the UI
        (run_of("__ASSET_JOB", set()), False),  # the check alone, launched from the UI
        (run_of("__ASSET_JOB"), False),
        (run_of("audit_sync"), False),
    ],
)
def test_a_sync_run_is_one_of_the_job_or_one_that_materializes_the_asset(run: dg.DagsterRun, is_sync: bool) -> None:
    assert syncs_a_dataset(run) is is_sync


@pytest.mark.parametrize("accession_ids", [[], ["SYNC-F1", "SYNC-F2"]])
def test_the_files_of_a_sync_are_read_back_from_its_run_config(accession_ids: list[str]) -> None:
    assert requested_accession_ids(sync_run_config(accession_ids)) == accession_ids
    assert requested_accession_ids(sync_run_config(accession_ids, parallel_files=8)) == accession_ids


def test_a_run_config_without_files_names_none() -> None:
    assert requested_accession_ids({}) is None
    assert requested_accession_ids({"ops": {"synced_dataset": {"ops": {}}}}) is None


@pytest.mark.parametrize("cursor", [None, "", "not json", "[]", '{"record_id": "7"}'])
def test_an_unreadable_event_cursor_is_none(cursor: str | None) -> None:
    assert cursor_storage_id(cursor) is None


def test_an_event_cursor_is_read_back() -> None:
    assert cursor_storage_id(event_cursor(42)) == 42
