"""The one `Definitions` object of the code location.

The configuration is read and validated when the code location loads (not at import), so a bad
key shows as a load error naming it (every bad key, one line each); the service's logging is configured then, once per process.
Runs and sensor ticks read it again through `ServiceSettingsResource`, in the process that uses it.
"""

import dagster as dg

from bpsync_dagster.configuration import load_settings, start_logging
from bpsync_dagster.jobs import sync_dataset, synced_dataset
from bpsync_dagster.jobs.audit_sync import audit_sync, build_audit_schedule, matches_sda_database
from bpsync_dagster.jobs.sync_dataset import DEPLOYMENT
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster.sensors import build_mapping_sensor, dead_run_reaper, drift_resync, failed_sync_reporter


@dg.definitions
def defs() -> dg.Definitions:
    settings = load_settings()
    start_logging(settings)
    DEPLOYMENT.check()
    return dg.Definitions(
        assets=[synced_dataset],
        asset_checks=[matches_sda_database],
        jobs=[sync_dataset, audit_sync],
        schedules=[
            build_audit_schedule(settings.audit.cron, settings.audit.verify_checksums, settings.audit.resync_drifted)
        ],
        sensors=[
            build_mapping_sensor(settings.sensor.interval_seconds),
            failed_sync_reporter,
            drift_resync,
            dead_run_reaper,
        ],
        # The step storage (`io_manager`) of a scale-out executor, if one is chosen (jobs/executors.py).
        resources={**RESOURCES, **DEPLOYMENT.resources},
        # Also for Dagster's asset job, which runs backfills and what the UI launches from the asset's page.
        executor=DEPLOYMENT.executor,
    )
