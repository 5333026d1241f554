"""The sensor that fails sync runs whose process died, so they are retried or re-executed."""

import dagster as dg

from bpsync_dagster.inventory import syncs_a_dataset
from bpsync_dagster.runs.liveness import dead_worker, fail_dead_run

DEAD_RUN_SENSOR_NAME = "dead_run_reaper"
RUNS_CHECKED_PER_TICK = 200


@dg.sensor(
    name=DEAD_RUN_SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks STARTED sync runs whose process is gone (killed, out of memory) as failed, "
        "which frees their queue slots and lets the daemon's run retries re-execute them."
    ),
)
def dead_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    instance = context.instance
    runs = [
        run
        for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=RUNS_CHECKED_PER_TICK)
        if syncs_a_dataset(run)
    ]
    failed = []
    for run in runs:
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
        return dg.SkipReason(f"{len(runs)} started runs checked; marked failed: {', '.join(failed)}")
    return dg.SkipReason(f"{len(runs)} started runs checked; every process is alive")
