"""The sensor that turns dataset-mapping messages into `sync_dataset` runs, and the one that reports
failed runs to the SDA error stream."""

import functools
import json
import time

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG

from bpsync_dagster.broker.messages import info_error_body
from bpsync_dagster.configuration import service_settings
from bpsync_dagster.inventory import DATASET_PARTITIONS, failed_sync_evaluation
from bpsync_dagster.jobs import DATASET_TAG, sync_dataset
from bpsync_dagster.jobs.failures import failure_reason
from bpsync_dagster.jobs.sync_dataset import post_manifest
from bpsync_dagster.resources import BrokerResource
from bpsync_dagster.sensors.earlier_runs import synced_earlier
from bpsync_dagster.sensors.mapping_poller import CORRELATION_TAG, MappingPoller

MAPPING_SENSOR_NAME = "dataset_mapping_sensor"
FAILED_SYNC_ERROR = "Dataset sync failed in sync service"


def _run_exists(instance: dg.DagsterInstance, run_key: str) -> bool:
    tags = {RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}
    return bool(instance.get_run_ids(dg.RunsFilter(tags=tags), limit=1))


def build_mapping_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=MAPPING_SENSOR_NAME,
        job=sync_dataset,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads broker.queue (mapping_stream) and requests one sync_dataset run per local dataset.",
    )
    def dataset_mapping_sensor(context: dg.SensorEvaluationContext, broker: BrokerResource) -> dg.SensorResult:
        started = time.monotonic()
        try:
            settings = service_settings()
            run_exists = functools.partial(_run_exists, context.instance)
            earlier = functools.partial(synced_earlier, context.instance, settings.broker.queue)
            poller = MappingPoller(settings, broker.session, run_exists, context.log, earlier)
            tick = poller.poll(context.cursor)
        except Exception as error:
            # A tick never fails: the cursor stays where it was and the next tick tries again.
            context.log.error(f"mapping sensor: {type(error).__name__}: {error}")
            return dg.SensorResult(skip_reason=dg.SkipReason(f"broker not read: {error}"))
        context.log.info(f"mapping sensor: {tick.report}; evaluated in {time.monotonic() - started:.2f} s")
        cursor = tick.cursor.serialize()
        if tick.run_requests:
            return dg.SensorResult(run_requests=tick.run_requests, cursor=cursor)
        return dg.SensorResult(skip_reason=dg.SkipReason(str(tick.report)), cursor=cursor)

    return dataset_mapping_sensor


def _manifest_delivered(instance: dg.DagsterInstance, run_id: str) -> bool:
    successes = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    return any(entry.step_key == post_manifest.name for entry in successes)


def _original_message(run: dg.DagsterRun) -> bytes:
    config = run.run_config.get("ops", {}).get("fetch_file_records", {}).get("config", {})
    message = {
        "type": "mapping",
        "dataset_id": config.get("dataset_id"),
        "accession_ids": config.get("accession_ids", []),
    }
    return json.dumps(message).encode()


@dg.run_failure_sensor(
    name="failed_sync_reporter",
    monitored_jobs=[sync_dataset],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "For every sync_dataset run that failed for good: publishes an info-error message to the error "
        "routing key and records a failed matches_sda_database check of the dataset's synced_dataset partition."
    ),
)
def failed_sync_reporter(context: dg.RunFailureSensorContext, broker: BrokerResource) -> None:
    run = context.dagster_run
    dataset_id = run.tags.get(DATASET_TAG, "unknown dataset")
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"run {run.run_id} of {dataset_id} failed and will be retried: no info-error yet")
        return
    if _manifest_delivered(context.instance, run.run_id):
        # The process died after the remote accepted the manifest: the dataset is synced.
        context.log.info(f"run {run.run_id} of {dataset_id} failed after its manifest was delivered: no info-error")
        return
    step_failures = context.get_step_failure_events()
    cause = failure_reason(step_failures[0]) if step_failures else context.failure_event.message
    reason = f"dataset {dataset_id}: run {run.run_id} failed: {cause or 'see the run in Dagster'}"
    if DATASET_TAG in run.tags:
        context.instance.add_dynamic_partitions(DATASET_PARTITIONS.name, [dataset_id])
        context.instance.report_runless_asset_event(failed_sync_evaluation(dataset_id, run.run_id, cause or "unknown"))
    with broker.session() as session:
        session.publish_error(
            info_error_body(reason, _original_message(run), error=FAILED_SYNC_ERROR), run.tags.get(CORRELATION_TAG)
        )
    context.log.info(f"info-error published for the failed sync of {dataset_id} (run {run.run_id})")
