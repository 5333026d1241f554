"""Creating `sync_dataset` runs outside a sensor: by `bpsync`, by the audit and by the backfill.

Runs get the same origin as when the webserver or the daemon loads the root `workspace.yaml`, so
the UI shows them like any run, can re-execute them, and the daemon's queue can launch them.
"""

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, QueuedRunCoordinator, RunsFilter

from bpsync_dagster.dagster_internals import ReconstructableJob, RemoteJobOrigin, workspace_job, workspace_job_origin
from bpsync_dagster.errors import SyncError
from bpsync_dagster.jobs import DATASET_TAG, sync_dataset

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


class NoRunQueue(SyncError):
    """Runs can be queued only with the QueuedRunCoordinator."""


def reconstructable_job() -> ReconstructableJob:
    return workspace_job(DEFINITIONS_MODULE, sync_dataset.name)


def remote_origin() -> RemoteJobOrigin:
    return workspace_job_origin(DEFINITIONS_MODULE, LOCATION_NAME, REPOSITORY_NAME, sync_dataset.name)


def sync_run_config(
    dataset_id: str, accession_ids: list[str], parallel_files: int, batch_limits: dict[str, int] | None = None
) -> dict[str, object]:
    """Run config of a sync; `batch_limits` (`max_batch_files`, `max_batch_bytes`) where not the executor's defaults."""
    ops: dict[str, object] = {
        "fetch_file_records": {"config": {"dataset_id": dataset_id, "accession_ids": accession_ids}},
        "copy_files": {"config": {"parallel_files": parallel_files}},
    }
    if batch_limits:
        ops["plan_copy_batches"] = {"config": batch_limits}
    return {"ops": ops, "loggers": {"console": {"config": {"log_level": "INFO"}}}}


def create_sync_run(
    instance: DagsterInstance, dataset_id: str, run_config: dict[str, object], tags: dict[str, str] | None = None
) -> DagsterRun:
    job = reconstructable_job()
    return instance.create_run_for_job(
        job_def=job.get_definition(),
        run_config=run_config,
        tags={**(tags or {}), DATASET_TAG: dataset_id},
        remote_job_origin=remote_origin(),
        job_code_origin=job.get_python_origin(),
    )


def enqueue_sync_run(instance: DagsterInstance, dataset_id: str, launched_by: str) -> DagsterRun:
    """Submit a run of the dataset to the instance's run queue (its limits apply; the daemon launches it)."""
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        raise NoRunQueue("the Dagster instance has no run queue: dagster.yaml must use the QueuedRunCoordinator")
    run = create_sync_run(instance, dataset_id, sync_run_config(dataset_id, [], 4), {LAUNCHED_BY_TAG: launched_by})
    return instance.submit_run(run.run_id, workspace=None)


def datasets_with_unfinished_runs(instance: DagsterInstance) -> set[str]:
    """Datasets whose sync is queued or running: launching another would only wait behind it."""
    records = instance.get_run_records(RunsFilter(job_name=sync_dataset.name, statuses=UNFINISHED_STATUSES))
    return {record.dagster_run.tags[DATASET_TAG] for record in records if DATASET_TAG in record.dagster_run.tags}
