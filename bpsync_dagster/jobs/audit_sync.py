"""The `audit_sync` job and the `matches_sda_database` check: is every local dataset in sync storage
as the SDA database says it should be?

The audit only reads and records a check result per dataset. With `resync_drifted` it marks its run
so that the `drift_resync` sensor requests a sync of every dataset it found drifted.
"""

import warnings

import dagster as dg
from pydantic import Field

from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.inventory import (
    DATASET_PARTITIONS,
    MATCHES_SDA_CHECK,
    SYNCED_DATASET,
    DatasetAudit,
    audit_dataset,
)
from bpsync_dagster.jobs.failures import DATABASE_RETRY, final_failures
from bpsync_dagster.resources import Crypt4ghKeysResource, SdaDatabaseResource, SyncStorageResource

MAX_LISTED_DATASETS = 200
# The audit step's output metadata entry that asks the drift_resync sensor to re-sync what drifted.
RESYNC_DRIFTED = "resync_drifted"


class AuditConfig(dg.Config):
    verify_checksums: bool = Field(
        default=False,
        description="Read every object's body and compare its sha256 with the ARCHIVED checksum (costs I/O).",
    )
    resync_drifted: bool = Field(
        default=False,
        description="Have the drift_resync sensor request a sync of every dataset that drifted.",
    )


@dg.op(retry_policy=DATABASE_RETRY)
def audit_sync_storage(
    context: dg.OpExecutionContext,
    config: AuditConfig,
    sda_database: SdaDatabaseResource,
    sync_storage: SyncStorageResource,
    crypt4gh_keys: Crypt4ghKeysResource,
) -> dict[str, list[str]]:
    """Compare every local dataset's files with sync storage; one check result per dataset.

    One step evaluates every dataset (one query, one process): the check itself, partitioned, evaluates
    one dataset per run. Never-synced datasets become partitions, so the UI lists them as missing."""
    instance = context.instance
    with final_failures():
        keys = crypt4gh_keys.node_keys()
        storage = sync_storage.client()
        files_by_dataset = sda_database.client().local_dataset_files(
            sda_database.service_settings.settings.center_prefix
        )
    synced = instance.get_materialized_partitions(SYNCED_DATASET)
    instance.add_dynamic_partitions(DATASET_PARTITIONS.name, sorted(set(files_by_dataset) - synced))
    audits: list[DatasetAudit] = []
    for dataset_id, records in files_by_dataset.items():
        audit = audit_dataset(dataset_id, records, keys, storage, dataset_id in synced, config.verify_checksums)
        audits.append(audit)
        context.log_event(_check_evaluation(audit))
    drifted = [audit.dataset_id for audit in audits if audit.drifted]
    summary = {
        "in_sync": [audit.dataset_id for audit in audits if audit.in_sync],
        "drifted": drifted,
        "never_synced": [audit.dataset_id for audit in audits if not audit.synced_before],
    }
    context.log.info(
        f"audit of {len(audits)} local datasets: {len(summary['in_sync'])} in sync, {len(drifted)} drifted, "
        f"{len(summary['never_synced'])} never synced"
        + ("; the drifted ones are re-synced" if config.resync_drifted and drifted else "")
    )
    context.add_output_metadata(
        {
            "datasets": len(audits),
            "in_sync": len(summary["in_sync"]),
            "drifted": len(drifted),
            "never_synced": len(summary["never_synced"]),
            "files_checked": sum(audit.files for audit in audits),
            "bytes_read": sum(audit.bytes_read for audit in audits),
            "checksums_verified": config.verify_checksums,
            RESYNC_DRIFTED: config.resync_drifted,
            "problem_datasets": dg.MetadataValue.md(_problem_list(audits)),
        }
    )
    return summary


def _check_evaluation(audit: DatasetAudit) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=SYNCED_DATASET,
        check_name=MATCHES_SDA_CHECK,
        passed=audit.in_sync,
        partition=audit.dataset_id,
        description=audit.summary(),
        metadata={
            "files": audit.files,
            "never_synced": not audit.synced_before,
            "missing": [
                escaped(problem.accession_id) for problem in audit.problems if problem.problem.startswith("missing")
            ],
            "problems": [problem.describe() for problem in audit.problems],
        },
    )


def _problem_list(audits: list[DatasetAudit]) -> str:
    problems = [audit for audit in audits if not audit.in_sync]
    if not problems:
        return "every local dataset is in sync"
    lines = [f"- {audit.summary()}" for audit in problems[:MAX_LISTED_DATASETS]]
    if len(problems) > MAX_LISTED_DATASETS:
        lines.append(f"- and {len(problems) - MAX_LISTED_DATASETS} more (see the check results of synced_dataset)")
    return "\n".join(lines)


@dg.job(executor_def=dg.in_process_executor, tags={"service": "bpsync"})
def audit_sync() -> None:
    """Audit sync storage against the SDA database for every local dataset."""
    audit_sync_storage()


def build_audit_schedule(cron: str, verify_checksums: bool, resync_drifted: bool) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="audit_sync_schedule",
        job=audit_sync,
        cron_schedule=cron,
        run_config=dg.RunConfig(
            ops={"audit_sync_storage": AuditConfig(verify_checksums=verify_checksums, resync_drifted=resync_drifted)}
        ),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs audit_sync on sync.audit.cron; sync.audit.verifyChecksums and sync.audit.resyncDrifted set its config.",
    )


def _matches_sda_database(
    context: dg.AssetCheckExecutionContext,
    sda_database: SdaDatabaseResource,
    sync_storage: SyncStorageResource,
    crypt4gh_keys: Crypt4ghKeysResource,
) -> dg.AssetCheckResult:
    """The dataset's files against sync storage, sizes only (no body is read)."""
    dataset_id = context.partition_key
    with final_failures():
        keys = crypt4gh_keys.node_keys()
        storage = sync_storage.client()
        records = sda_database.client().file_records(dataset_id, []).records
    synced = dataset_id in context.instance.get_materialized_partitions(SYNCED_DATASET)
    evaluation = _check_evaluation(audit_dataset(dataset_id, records, keys, storage, synced, verify_checksums=False))
    return dg.AssetCheckResult(
        passed=evaluation.passed, description=evaluation.description, metadata=evaluation.metadata
    )


with warnings.catch_warnings():
    # Dagster 1.13 calls a partitioned asset check a preview, yet it is the one way to check a partition
    # of an asset (one dataset) on its own from the UI; only that warning is silenced.
    warnings.filterwarnings(
        "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
    )
    matches_sda_database = dg.asset_check(
        asset=SYNCED_DATASET,
        name=MATCHES_SDA_CHECK,
        partitions_def=DATASET_PARTITIONS,
        retry_policy=DATABASE_RETRY,
        description=(
            "Every file of the dataset is in sync storage with the size its record gives. Run on its own from "
            "the UI; audit_sync evaluates it for every local dataset at once."
        ),
    )(_matches_sda_database)
