"""The `sync_dataset` job as the code location resolves it (with its resources), for tests that create or execute its runs
in the test process, and the tags that make a run one of a dataset's partition."""

import functools

import dagster as dg

from bpsync_dagster.dagster_internals import PARTITION_TAG
from bpsync_dagster.inventory import DATASET_PARTITIONS
from bpsync_dagster.jobs import sync_dataset, synced_dataset
from bpsync_dagster.jobs.audit_sync import matches_sda_database
from bpsync_dagster.resources import RESOURCES


@functools.cache
def sync_job() -> dg.JobDefinition:
    definitions = dg.Definitions(
        assets=[synced_dataset], asset_checks=[matches_sda_database], jobs=[sync_dataset], resources=RESOURCES
    )
    return definitions.resolve_job_def(sync_dataset.name)


def partition_tags(instance: dg.DagsterInstance, dataset_id: str) -> dict[str, str]:
    """Add the dataset's partition (if new) and return the tag that makes a run one of it."""
    instance.add_dynamic_partitions(DATASET_PARTITIONS.name, [dataset_id])
    return {PARTITION_TAG: dataset_id}
