"""The sensor that reports failed sync runs to the SDA error stream, each exactly once.

Its cursor is the storage ID of the last run failure event it is done with, as `{"record_id": N}`
(the key of the run-status-sensor cursors it stored before, which it still reads). A failure whose
info-error the broker does not take (down, unroutable), or whose retry Dagster has not decided yet,
stops the tick there: the cursor stays before it and the next tick tries again. A published one is marked on its run (`bpsync/info_error_published`), so that a tick that
ends before storing its cursor does not publish it twice.
"""

import contextlib
import json
from dataclasses import dataclass

import dagster as dg

from bpsync_dagster.broker.client import BrokerError, BrokerSession
from bpsync_dagster.broker.messages import MAX_REASON_LENGTH, info_error_body
from bpsync_dagster.dagster_internals import PARTITION_TAG, WILL_RETRY_TAG
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.inventory import syncs_a_dataset
from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.jobs.failures import failure_reason, innermost_message
from bpsync_dagster.jobs.sync_dataset import requested_accession_ids
from bpsync_dagster.resources import BrokerResource
from bpsync_dagster.sensors.event_cursor import cursor_storage_id, event_cursor
from bpsync_dagster.sensors.mapping_poller import CORRELATION_TAG

FAILED_SYNC_REPORTER_NAME = "failed_sync_reporter"
FAILED_SYNC_ERROR = "Dataset sync failed in sync service"
FAILURES_PER_TICK = 50
# Its value is the run's own ID: a re-execution that copies its parent's tags does not match it.
REPORTED_TAG = "bpsync/info_error_published"


@dataclass(frozen=True)
class FailureReport:
    """The info-error of one failed sync."""

    run: dg.DagsterRun
    dataset_id: str
    body: bytes
    correlation_id: str | None


def _manifest_delivered(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run materialized its dataset's partition: the remote accepted the manifest."""
    return bool(instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))


def _original_message(run: dg.DagsterRun, dataset_id: str) -> bytes:
    message = {
        "type": "mapping",
        "dataset_id": dataset_id,
        "accession_ids": requested_accession_ids(run.run_config) or [],
    }
    return json.dumps(message).encode()


def _failure_cause(instance: dg.DagsterInstance, run_id: str, failure_message: str | None) -> str:
    """The first failed step's error; else the error that failed the run outside its steps (its launch)."""
    step_failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if step_failures and step_failures[0].dagster_event is not None:
        return failure_reason(step_failures[0].dagster_event)
    for entry in reversed(instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        event = entry.dagster_event
        if event is not None and event.engine_event_data is not None and event.engine_event_data.error is not None:
            return f"{event.message}: {innermost_message(event.engine_event_data.error)}"
    return failure_message or "see the run in Dagster"


def _retry_undecided(instance: dg.DagsterInstance, record: dg.EventLogRecord) -> bool:
    """Dagster tags a failed run with whether it will be retried just after it records the failure: a
    tick in between must not take the run for failed for good."""
    run = instance.get_run_by_id(record.event_log_entry.run_id)
    return run is not None and instance.run_retries_enabled and WILL_RETRY_TAG not in run.tags


def _failure_report(
    instance: dg.DagsterInstance, record: dg.EventLogRecord, log: dg.DagsterLogManager
) -> FailureReport | None:
    """What to report of a run failure, or None: not a sync run, reported already, to be
    retried, or synced after all."""
    run = instance.get_run_by_id(record.event_log_entry.run_id)
    if run is None or not syncs_a_dataset(run) or run.tags.get(REPORTED_TAG) == run.run_id:
        return None
    dataset_id = run.tags.get(PARTITION_TAG) or run.tags.get(DATASET_TAG, "unknown dataset")
    if run.tags.get(WILL_RETRY_TAG) == "true":
        log.info(f"run {run.run_id} of {dataset_id} failed and will be retried: no info-error yet")
        return None
    if _manifest_delivered(instance, run.run_id):
        # The process died after the remote accepted the manifest: the dataset is synced.
        log.info(f"run {run.run_id} of {dataset_id} failed after its manifest was delivered: no info-error")
        return None
    event = record.event_log_entry.dagster_event
    cause = escaped(_failure_cause(instance, run.run_id, event.message if event else None).replace("\n", " "))
    reason = f"dataset {dataset_id}: run {run.run_id} failed: {cause}"[:MAX_REASON_LENGTH]
    body = info_error_body(reason, _original_message(run, dataset_id), error=FAILED_SYNC_ERROR)
    return FailureReport(run, dataset_id, body, run.tags.get(CORRELATION_TAG))


def _mark_reported(instance: dg.DagsterInstance, report: FailureReport) -> None:
    """Mark the run so that its info-error is not published again."""
    instance.add_run_tags(report.run.run_id, {REPORTED_TAG: report.run.run_id})


@dg.sensor(
    name=FAILED_SYNC_REPORTER_NAME,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "For every sync_dataset run that failed for good (its synced_dataset partition shows as failed): "
        "publishes an info-error message to the error routing key. A failure the broker does not take is "
        "tried again on the next tick: the cursor stays before it."
    ),
)
def failed_sync_reporter(context: dg.SensorEvaluationContext, broker: BrokerResource) -> dg.SensorResult:
    instance = context.instance
    after = cursor_storage_id(context.cursor)
    if after is None:
        latest = instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1).records
        after = latest[0].storage_id if latest else -1
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"first tick: failures after event {after} are reported"),
            cursor=event_cursor(after),
        )
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(dg.DagsterEventType.RUN_FAILURE, after_storage_id=after),
        limit=FAILURES_PER_TICK,
        ascending=True,
    ).records
    published = 0
    refusal = None
    with contextlib.ExitStack() as stack:
        session: BrokerSession | None = None
        for record in records:
            if _retry_undecided(instance, record):
                refusal = f"run {record.event_log_entry.run_id} failed but its retry is not decided yet"
                context.log.info(f"{refusal}; the next tick looks again")
                break
            report = _failure_report(instance, record, context.log)
            if report is not None:
                try:
                    session = session or stack.enter_context(broker.session())
                    session.publish_error(report.body, report.correlation_id)
                except BrokerError as error:
                    refusal = (
                        f"the info-error of run {report.run.run_id} ({report.dataset_id}) is not published: {error}"
                    )
                    context.log.error(f"{refusal}; the next tick tries again")
                    break
                _mark_reported(instance, report)
                published += 1
                context.log.info(
                    f"info-error published for the failed sync of {report.dataset_id} (run {report.run.run_id})"
                )
            after = record.storage_id
    summary = f"{len(records)} failures read, {published} info-errors published"
    return dg.SensorResult(
        skip_reason=dg.SkipReason(f"{summary}; {refusal}" if refusal else summary), cursor=event_cursor(after)
    )
