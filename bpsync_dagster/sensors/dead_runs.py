"""The sensor that fails `sync_dataset` runs whose process died, so they are retried or re-executed."""

import dagster as dg

from bpsync_dagster.jobs import sync_dataset
from bpsync_dagster.run_workers import dead_worker, fail_dead_run

DEAD_RUN_SENSOR_NAME = "dead_run_reaper"
RUNS_CHECKED_PER_TICK = 200


@dg.sensor(
    name=DEAD_RUN_SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks STARTED sync_dataset runs whose process is gone (killed, out of memory) as failed, "
        "which frees their queue slots and lets the daemon's run retries re-execute them."
    ),
)
def dead_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance = context.instance
    records = instance.get_run_records(
        dg.RunsFilter(job_name=sync_dataset.name, statuses=[dg.DagsterRunStatus.STARTED]),
        limit=RUNS_CHECKED_PER_TICK,
    )
    failed = []
    for record in records:
        run = record.dagster_run
        try:
            worker = dead_worker(instance, run)
            if worker is not None:
                fail_dead_run(instance, run, worker)
                failed.append(run.run_id)
                context.log.warning(f"run {run.run_id}: its process ({worker.describe()}) is gone: marked failed")
        except Exception as error:
            # A tick never fails; the run is looked at again on the next tick.
            context.log.error(f"run {run.run_id}: worker not checked: {type(error).__name__}: {error}")
    if failed:
        return dg.SkipReason(f"{len(records)} started runs checked; marked failed: {', '.join(failed)}")
    return dg.SkipReason(f"{len(records)} started runs checked; every process is alive")
