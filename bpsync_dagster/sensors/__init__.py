"""Sensors: dataset-mapping messages in, failed syncs out to the error stream, drifted datasets re-synced,
dead runs failed."""

from bpsync_dagster.sensors.dead_runs import DEAD_RUN_SENSOR_NAME, dead_run_reaper
from bpsync_dagster.sensors.drift_resync import DRIFT_RESYNC_SENSOR_NAME, drift_resync
from bpsync_dagster.sensors.failed_sync_reporter import failed_sync_reporter
from bpsync_dagster.sensors.mapping_sensor import MAPPING_SENSOR_NAME, build_mapping_sensor

__all__ = [
    "DEAD_RUN_SENSOR_NAME",
    "DRIFT_RESYNC_SENSOR_NAME",
    "MAPPING_SENSOR_NAME",
    "build_mapping_sensor",
    "dead_run_reaper",
    "drift_resync",
    "failed_sync_reporter",
]
