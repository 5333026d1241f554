"""Re-execution of a failed sync run from failure: its failed and skipped steps, reusing the outputs of
its successful ones. The new run gets the same origin as when the webserver loads the root
`workspace.yaml`, so the UI shows it like any run and can re-execute it in turn.
"""

import sys

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from bpsync_dagster.dagster_internals import (
    PARENT_RUN_ID_TAG,
    PARTITION_TAG,
    RESUME_RETRY_TAG,
    ROOT_RUN_ID_TAG,
    SYSTEM_TAG_PREFIX,
    create_resume_retry_run,
)
from bpsync_dagster.errors import SyncError
from bpsync_dagster.runs.launch import reconstructable_job, remote_origin
from bpsync_dagster.runs.liveness import dead_worker, fail_dead_run


class RunNotFound(SyncError):
    """The run to re-execute is not in the instance."""


class RunStillRunning(SyncError):
    """The run to re-execute has not ended and its worker is alive (or on another host)."""


def create_reexecution_from_failure(instance: DagsterInstance, parent_run_id: str) -> DagsterRun:
    """A run of the parent's failed and skipped steps, reusing the outputs of its successful ones."""
    parent = instance.get_run_by_id(parent_run_id)
    if parent is None:
        raise RunNotFound(f"run {parent_run_id} is not in the Dagster instance at DAGSTER_HOME")
    if parent.status in (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
        worker = dead_worker(instance, parent)
        if worker is None:
            raise RunStillRunning(
                f"run {parent_run_id} is {parent.status.value} and its process is alive or not on this host: "
                "wait for it to end, or terminate it in the Dagster UI"
            )
        fail_dead_run(instance, parent, worker)
        print(
            f"bpsync: run {parent_run_id} was marked failed: its process ({worker.describe()}) is gone", file=sys.stderr
        )
        parent = instance.get_run_by_id(parent_run_id)
    tags = {
        **{
            key: value
            for key, value in parent.tags.items()
            if key == PARTITION_TAG or not key.startswith(SYSTEM_TAG_PREFIX)
        },
        PARENT_RUN_ID_TAG: parent.run_id,
        ROOT_RUN_ID_TAG: parent.root_run_id or parent.run_id,
        RESUME_RETRY_TAG: "true",
    }
    return create_resume_retry_run(instance, reconstructable_job(), remote_origin(), parent, tags)
