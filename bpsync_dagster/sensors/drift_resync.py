"""The sensor that re-syncs what an audit found drifted: for every successful `audit_sync` run asked to
(`resync_drifted`), a `sync_dataset` run of the partition of each dataset whose check it failed
although the dataset was synced before.

Its cursor is the storage ID of the last run success it is done with. Run keys name the audit run and
the dataset, so a tick repeated after a crash requests no second run.
"""

import dagster as dg

from bpsync_dagster.jobs import DATASET_TAG, sync_dataset
from bpsync_dagster.jobs.audit_sync import RESYNC_DRIFTED, audit_sync
from bpsync_dagster.jobs.sync_dataset import sync_run_config
from bpsync_dagster.runs.launch import LAUNCHED_BY_TAG, datasets_with_unfinished_runs
from bpsync_dagster.sensors.event_cursor import cursor_storage_id, event_cursor

DRIFT_RESYNC_SENSOR_NAME = "drift_resync"
SUCCESSES_PER_TICK = 1000


def _resync_asked(instance: dg.DagsterInstance, run_id: str) -> bool:
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = entry.dagster_event
        flag = event.step_output_data.metadata.get(RESYNC_DRIFTED) if event is not None else None
        if flag is not None and flag.value is True:
            return True
    return False


def drifted_datasets(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The datasets whose check the audit run failed although they were synced before."""
    drifted = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event is not None else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed or evaluation.partition is None:
            continue
        never_synced = evaluation.metadata.get("never_synced")
        if never_synced is not None and never_synced.value is False:
            drifted.append(evaluation.partition)
    return sorted(drifted)


@dg.sensor(
    name=DRIFT_RESYNC_SENSOR_NAME,
    job=sync_dataset,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After an audit_sync run with resync_drifted (sync.audit.resyncDrifted), requests a sync_dataset run of "
        "every dataset it found drifted, unless one is already queued or running."
    ),
)
def drift_resync(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            dg.DagsterEventType.RUN_SUCCESS, after_storage_id=cursor_storage_id(context.cursor)
        ),
        limit=SUCCESSES_PER_TICK,
        ascending=True,
    ).records
    requests: list[dg.RunRequest] = []
    busy: set[str] | None = None
    for record in records:
        run_id = record.event_log_entry.run_id
        if record.event_log_entry.job_name != audit_sync.name or not _resync_asked(instance, run_id):
            continue
        busy = datasets_with_unfinished_runs(instance) if busy is None else busy
        for dataset_id in drifted_datasets(instance, run_id):
            if dataset_id in busy:
                context.log.info(f"dataset {dataset_id}: drifted; a sync is already queued or running")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"audit:{run_id}:{dataset_id}",
                    partition_key=dataset_id,
                    run_config=sync_run_config([]),
                    tags={DATASET_TAG: dataset_id, LAUNCHED_BY_TAG: f"audit_sync run {run_id}"},
                )
            )
    cursor = event_cursor(records[-1].storage_id) if records else context.cursor
    summary = f"{len(records)} run successes read, {len(requests)} re-syncs of drifted datasets requested"
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor)
