"""The one `Definitions` object: what the code location offers the daemon and the UI, from the configuration."""

import dagster as dg
import pytest

from bpsync_dagster.definitions import defs
from bpsync_dagster.inventory import DATASET_PARTITIONS, MATCHES_SDA_CHECK, SYNCED_DATASET
from bpsync_dagster_tests.support.environment import Node


def test_the_audit_schedule_comes_from_the_configuration_and_runs_under_the_daemon(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node: Node = make_node()
    node.extra_env = {"SYNC_AUDIT_CRON": "15 2 * * 1", "SYNC_AUDIT_VERIFYCHECKSUMS": "true"}
    node.configure_this_process(monkeypatch)
    definitions = defs()

    schedule = definitions.resolve_schedule_def("audit_sync_schedule")
    assert schedule.cron_schedule == "15 2 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "audit_sync"
    request = schedule.evaluate_tick(dg.build_schedule_context()).run_requests[0]
    assert request.run_config["ops"]["audit_sync_storage"]["config"] == {
        "verify_checksums": True,
        "resync_drifted": False,
    }
    assert {sensor.name for sensor in definitions.sensors} == {
        "dataset_mapping_sensor",
        "failed_sync_reporter",
        "drift_resync",
        "dead_run_reaper",
    }
    asset = definitions.resolve_assets_def(SYNCED_DATASET)
    assert asset.partitions_def == DATASET_PARTITIONS
    check_key = dg.AssetCheckKey(SYNCED_DATASET, MATCHES_SDA_CHECK)
    assert check_key in definitions.resolve_asset_graph().asset_check_keys
    job = definitions.resolve_job_def("sync_dataset")
    assert job.partitions_def == DATASET_PARTITIONS and job.executor_def == dg.in_process_executor
    assert job.asset_layer.selected_asset_keys == {SYNCED_DATASET}
    assert "synced_dataset_matches_sda_database" not in {node.name for node in job.nodes}
