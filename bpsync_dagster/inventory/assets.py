"""The asset catalog's inventory: `synced_dataset` (one dynamic partition per dataset ID), materialized
by sync runs, and its check that sync storage matches the SDA database."""

import dagster as dg

SYNCED_DATASET = dg.AssetKey("synced_dataset")
DATASET_PARTITIONS = dg.DynamicPartitionsDefinition(name="dataset_id")
MATCHES_SDA_CHECK = "matches_sda_database"
SYNC_JOB_NAME = "sync_dataset"


def syncs_a_dataset(run: dg.DagsterRun) -> bool:
    """A run that materializes a partition of `synced_dataset`: one of the `sync_dataset` job, or of
    Dagster's asset job, which runs a partition backfill or a materialization launched from the UI."""
    return run.job_name == SYNC_JOB_NAME or SYNCED_DATASET in (run.asset_selection or ())
