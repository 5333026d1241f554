"""The one `Definitions` object of the code location.

The configuration is read and validated when the code location loads (not at import), so a bad
key shows as a load error naming it.
"""

import dagster as dg

from bpsync_dagster.configuration import service_settings
from bpsync_dagster.inventory import synced_dataset
from bpsync_dagster.jobs import sync_dataset
from bpsync_dagster.jobs.audit_sync import audit_sync, build_audit_schedule, matches_sda_database
from bpsync_dagster.jobs.sync_dataset import DEPLOYMENT
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster.sensors import build_mapping_sensor, dead_run_reaper, failed_sync_reporter


@dg.definitions
def defs() -> dg.Definitions:
    settings = service_settings()
    DEPLOYMENT.check()
    return dg.Definitions(
        assets=[synced_dataset],
        asset_checks=[matches_sda_database],
        jobs=[sync_dataset, audit_sync],
        schedules=[
            build_audit_schedule(settings.audit.cron, settings.audit.verify_checksums, settings.audit.resync_drifted)
        ],
        sensors=[build_mapping_sensor(settings.sensor.interval_seconds), failed_sync_reporter, dead_run_reaper],
        # The step storage (`io_manager`) of a scale-out executor, if one is chosen (jobs/executors.py).
        resources={**RESOURCES, **DEPLOYMENT.resources},
    )
