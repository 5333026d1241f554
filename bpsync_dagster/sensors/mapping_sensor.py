"""The sensor that turns dataset-mapping messages into `sync_dataset` runs, one per dataset partition
(added in the same result when new)."""

import functools
import time

import dagster as dg

from bpsync_dagster.dagster_internals import RUN_KEY_TAG, SENSOR_NAME_TAG
from bpsync_dagster.inventory import DATASET_PARTITIONS
from bpsync_dagster.jobs import sync_dataset
from bpsync_dagster.resources import BrokerResource
from bpsync_dagster.sensors.earlier_runs import synced_earlier
from bpsync_dagster.sensors.info_errors import InfoErrorOutbox
from bpsync_dagster.sensors.mapping_poller import MappingPoller

MAPPING_SENSOR_NAME = "dataset_mapping_sensor"


def _run_exists(instance: dg.DagsterInstance, run_key: str) -> bool:
    tags = {RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}
    return bool(instance.get_run_ids(dg.RunsFilter(tags=tags), limit=1))


def build_mapping_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=MAPPING_SENSOR_NAME,
        job=sync_dataset,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Reads broker.queue (mapping_stream) and requests a sync_dataset run of the synced_dataset "
            "partition of every local dataset mapped."
        ),
    )
    def dataset_mapping_sensor(context: dg.SensorEvaluationContext, broker: BrokerResource) -> dg.SensorResult:
        started = time.monotonic()
        try:
            settings = broker.service_settings.settings
            run_exists = functools.partial(_run_exists, context.instance)
            outbox = InfoErrorOutbox(context.instance.run_storage, MAPPING_SENSOR_NAME, context.log)
            earlier = functools.partial(synced_earlier, context.instance, settings.broker.queue)
            poller = MappingPoller(settings, broker.session, run_exists, context.log, outbox, earlier)
            tick = poller.poll(context.cursor)
        except Exception as error:
            # A tick never fails: the cursor stays where it was and the next tick tries again.
            context.log.error(f"mapping sensor: {type(error).__name__}: {error}")
            return dg.SensorResult(skip_reason=dg.SkipReason(f"broker not read: {error}"))
        context.log.info(f"mapping sensor: {tick.report}; evaluated in {time.monotonic() - started:.2f} s")
        cursor = tick.cursor.serialize()
        if tick.run_requests:
            datasets = sorted({request.partition_key for request in tick.run_requests if request.partition_key})
            return dg.SensorResult(
                run_requests=tick.run_requests,
                dynamic_partitions_requests=[DATASET_PARTITIONS.build_add_request(datasets)],
                cursor=cursor,
            )
        return dg.SensorResult(skip_reason=dg.SkipReason(str(tick.report)), cursor=cursor)

    return dataset_mapping_sensor
