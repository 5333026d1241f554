"""Sensors: dataset-mapping messages in, failed syncs out to the error stream."""

from bpsync_dagster.sensors.mapping_sensor import (
    MAPPING_SENSOR_NAME,
    build_mapping_sensor,
    failed_sync_reporter,
)

__all__ = ["MAPPING_SENSOR_NAME", "build_mapping_sensor", "failed_sync_reporter"]
