"""`sync_dataset` runs outside a sensor: the run `bpsync sync` creates, and which datasets have one under way.

Runs get the same origin as when the webserver or the daemon loads the root `workspace.yaml`, so
the UI shows them like any run, can re-execute them, and the daemon's queue can launch them.
"""

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from bpsync_dagster.dagster_internals import (
    PARTITION_TAG,
    ReconstructableJob,
    RemoteJobOrigin,
    workspace_job,
    workspace_job_origin,
)
from bpsync_dagster.inventory import DATASET_PARTITIONS, syncs_a_dataset
from bpsync_dagster.jobs import DATASET_TAG, sync_dataset
from bpsync_dagster.jobs.sync_dataset import sync_run_config

LOCATION_NAME = "bpsync"
DEFINITIONS_MODULE = "bpsync_dagster.definitions"
REPOSITORY_NAME = "__repository__"
LAUNCHED_BY_TAG = "bpsync/launched_by"
UNFINISHED_STATUSES = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def reconstructable_job() -> ReconstructableJob:
    return workspace_job(DEFINITIONS_MODULE, sync_dataset.name)


def remote_origin() -> RemoteJobOrigin:
    return workspace_job_origin(DEFINITIONS_MODULE, LOCATION_NAME, REPOSITORY_NAME, sync_dataset.name)


def create_sync_run(
    instance: DagsterInstance,
    dataset_id: str,
    accession_ids: list[str],
    parallel_files: int,
    tags: dict[str, str] | None = None,
    batch_limits: dict[str, int] | None = None,
    bandwidth_limit: int | None = None,
) -> DagsterRun:
    """A run of the dataset's partition of `synced_dataset` (added if new), with `tags` besides the
    dataset's, to be executed by `bpsync` or submitted to the run queue."""
    instance.add_dynamic_partitions(DATASET_PARTITIONS.name, [dataset_id])
    job = reconstructable_job()
    return instance.create_run_for_job(
        job_def=job.get_definition(),
        run_config={
            **sync_run_config(accession_ids, parallel_files, batch_limits, bandwidth_limit),
            # The run's events stay in its event log; on the terminal `bpsync` prints its steps and the
            # service's own log lines, once, and a failure as one line without Dagster's traceback.
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        },
        tags={**(tags or {}), DATASET_TAG: dataset_id, PARTITION_TAG: dataset_id},
        remote_job_origin=remote_origin(),
        job_code_origin=job.get_python_origin(),
    )


def datasets_with_unfinished_runs(instance: DagsterInstance) -> set[str]:
    """Datasets whose sync (of any origin: sensor, backfill, UI) is queued or running: launching another
    would only wait behind it."""
    runs = instance.get_runs(RunsFilter(statuses=UNFINISHED_STATUSES))
    return {run.tags[PARTITION_TAG] for run in runs if PARTITION_TAG in run.tags and syncs_a_dataset(run)}
