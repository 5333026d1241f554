"""Execute `sync_dataset` runs in this process, recorded in the Dagster instance at `DAGSTER_HOME`.

Runs get the same origin as when the webserver loads the root `workspace.yaml`, so the UI shows
them like any run and can re-execute them.
"""

import sys

from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus

from bpsync_dagster.dagster_internals import (
    PARENT_RUN_ID_TAG,
    PARTITION_TAG,
    RESUME_RETRY_TAG,
    ROOT_RUN_ID_TAG,
    SYSTEM_TAG_PREFIX,
    create_resume_retry_run,
    execute_run_events,
)
from bpsync_dagster.errors import SyncError
from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.jobs.failures import failure_reason, innermost_message
from bpsync_dagster.jobs.sync_dataset import is_copy_step
from bpsync_dagster.run_workers import announce_worker, dead_worker, fail_dead_run
from bpsync_dagster.sync_runs import reconstructable_job, remote_origin


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


def execute_with_progress(instance: DagsterInstance, run: DagsterRun) -> int:
    """Execute the run, print each step and a summary; exit status 0 on success."""
    dataset_id = run.tags.get(DATASET_TAG, "?")
    print(f"bpsync: dataset {dataset_id}: run {run.run_id}", flush=True)
    announce_worker(instance, run)
    outputs: dict[str, dict[str, object]] = {}
    failure: DagsterEvent | None = None
    for event in execute_run_events(reconstructable_job(), run, instance):
        step = (event.step_key or "").partition(".")[2] or event.step_key
        if event.event_type == DagsterEventType.STEP_START:
            print(f"  {step} ...", flush=True)
        elif event.event_type == DagsterEventType.STEP_OUTPUT:
            outputs[step] = {key: value.value for key, value in event.step_output_data.metadata.items()}
        elif event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            print(f"  {step} will retry: {innermost_message(event.step_retry_data.error)}", flush=True)
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            print(f"  {step} done", flush=True)
        elif event.event_type == DagsterEventType.STEP_FAILURE and failure is None:
            failure = event
    finished = instance.get_run_by_id(run.run_id)
    if failure is not None or finished is None or not finished.is_success:
        where = f" in step {failure.node_handle.name}" if failure and failure.node_handle else ""
        reason = failure_reason(failure) if failure else "the run did not succeed"
        print(f"bpsync: dataset {dataset_id}: sync failed{where}: {reason}", file=sys.stderr)
        print(f"bpsync: re-execute it from failure with: bpsync reexecute {run.run_id}", file=sys.stderr)
        return 1
    copied = {
        name: sum(int(metadata.get(name, 0)) for step, metadata in outputs.items() if is_copy_step(step))
        for name in ("files_copied", "files_skipped", "bytes_copied")
    }
    posted = outputs.get("post_manifest", {})
    print(
        f"bpsync: dataset {dataset_id} synced: {copied['files_copied']} files copied, "
        f"{copied['files_skipped']} already in place, {copied['bytes_copied']} bytes; "
        f"manifest accepted by {posted.get('remote_url')} (HTTP {posted.get('remote_http_status')})"
    )
    return 0
