"""What is in sync: the `synced_dataset` asset, one partition per dataset, and its audit."""

from bpsync_dagster.inventory.assets import (
    DATASET_PARTITIONS,
    MATCHES_SDA_CHECK,
    SYNCED_DATASET,
)
from bpsync_dagster.inventory.audit import DatasetAudit, FileProblem, audit_dataset

__all__ = [
    "DATASET_PARTITIONS",
    "MATCHES_SDA_CHECK",
    "SYNCED_DATASET",
    "DatasetAudit",
    "FileProblem",
    "audit_dataset",
]
