"""What is in sync: the `synced_dataset` asset, one partition per dataset, and its audit."""

from bpsync_dagster.inventory.assets import (
    DATASET_PARTITIONS,
    MATCHES_SDA_CHECK,
    SYNC_JOB_NAME,
    SYNCED_DATASET,
    syncs_a_dataset,
)
from bpsync_dagster.inventory.audit import DatasetAudit, FileProblem, audit_dataset

__all__ = [
    "DATASET_PARTITIONS",
    "MATCHES_SDA_CHECK",
    "SYNCED_DATASET",
    "SYNC_JOB_NAME",
    "DatasetAudit",
    "FileProblem",
    "audit_dataset",
    "syncs_a_dataset",
]
