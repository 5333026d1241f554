"""The results of the `matches_sda_database` check, as the tests read them back from the instance."""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord

from bpsync_dagster.inventory import MATCHES_SDA_CHECK, SYNCED_DATASET

CHECK_KEY = dg.AssetCheckKey(SYNCED_DATASET, MATCHES_SDA_CHECK)


def latest_check_record(instance: dg.DagsterInstance, dataset_id: str) -> AssetCheckExecutionRecord | None:
    """The dataset's latest evaluated execution of the check (its run and result), if it has one."""
    for record in instance.event_log_storage.get_asset_check_execution_history(CHECK_KEY, limit=1000):
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None and evaluation.partition == dataset_id:
            return record
    return None


def latest_check_evaluation(instance: dg.DagsterInstance, dataset_id: str) -> dg.AssetCheckEvaluation | None:
    """The dataset's latest result of the check, if it has one."""
    record = latest_check_record(instance, dataset_id)
    return record.event.asset_check_evaluation if record is not None and record.event is not None else None
