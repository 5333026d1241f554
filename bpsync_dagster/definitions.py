"""The one `Definitions` object of the code location.

The configuration is read and validated when the code location loads (not at import), so a bad
key shows as a load error naming it.
"""

import dagster as dg

from bpsync_dagster.configuration import service_settings
from bpsync_dagster.jobs import sync_dataset
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster.sensors import build_mapping_sensor, dead_run_reaper, failed_sync_reporter

LOCATION_NAME = "bpsync"


@dg.definitions
def defs() -> dg.Definitions:
    settings = service_settings()
    return dg.Definitions(
        jobs=[sync_dataset],
        sensors=[build_mapping_sensor(settings.sensor.interval_seconds), failed_sync_reporter, dead_run_reaper],
        resources=RESOURCES,
    )
