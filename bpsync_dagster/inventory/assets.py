"""The asset catalog's inventory: `synced_dataset`, materialized by every successful sync of a dataset
(one dynamic partition per dataset ID), with the check that sync storage matches the SDA database."""

import dagster as dg

SYNCED_DATASET = dg.AssetKey("synced_dataset")
DATASET_PARTITIONS = dg.DynamicPartitionsDefinition(name="dataset_id")
MATCHES_SDA_CHECK = "matches_sda_database"

synced_dataset = dg.AssetSpec(
    SYNCED_DATASET,
    partitions_def=DATASET_PARTITIONS,
    group_name="sync",
    kinds={"crypt4gh"},
    description=(
        "A local dataset copied to sync storage and announced to the remote sync API. Each successful "
        "sync_dataset run materializes the dataset's partition; the audit_sync job checks it."
    ),
)


def failed_sync_evaluation(dataset_id: str, run_id: str, reason: str) -> dg.AssetCheckEvaluation:
    """A failed check for a dataset whose sync failed for good."""
    return dg.AssetCheckEvaluation(
        asset_key=SYNCED_DATASET,
        check_name=MATCHES_SDA_CHECK,
        passed=False,
        partition=dataset_id,
        description=f"sync run {run_id} failed: {reason}",
        metadata={"run_id": run_id, "reason": reason},
    )
