"""`bpsync sync` and `bpsync reexecute`: a sync run executed in this process, recorded in the Dagster
instance at `DAGSTER_HOME`, its steps printed as they start and end, and a summary. On a terminal a
live line under the steps shows how far the copy is."""

import sys
from collections.abc import Callable
from contextlib import nullcontext

from dagster import DagsterEvent, DagsterEventType, DagsterInstance, DagsterRun

from bpsync_dagster.cli.live_line import CopyLine, LiveLine
from bpsync_dagster.dagster_internals import execute_run_events
from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.jobs.failures import failure_reason, innermost_message
from bpsync_dagster.jobs.progress import LIVE_COPIES
from bpsync_dagster.jobs.sync_dataset import is_copy_step, op_step_key
from bpsync_dagster.runs.launch import reconstructable_job
from bpsync_dagster.runs.liveness import announce_worker
from bpsync_dagster.storage.transfer import SERVER_SIDE, STREAMED


def copy_modes(files_copied: int, server_side: int) -> str:
    """How the copied bodies went: `streamed`, `server-side`, or `streamed 2, server-side 3`."""
    streamed = files_copied - server_side
    if not server_side:
        return STREAMED
    return SERVER_SIDE if not streamed else f"{STREAMED} {streamed}, {SERVER_SIDE} {server_side}"


def execute_with_progress(instance: DagsterInstance, run: DagsterRun) -> int:
    """Execute the run, print each step and a summary; exit status 0 on success."""
    dataset_id = run.tags.get(DATASET_TAG, "?")
    print(f"bpsync: dataset {dataset_id}: run {run.run_id}", flush=True)
    announce_worker(instance, run)
    outputs: dict[str, dict[str, object]] = {}
    failure: DagsterEvent | None = None
    copy_line = CopyLine(LIVE_COPIES.totals)
    live = sys.stdout.isatty()
    with LiveLine(sys.stdout, copy_line.render) if live else nullcontext() as line:
        say: Callable[[str], None] = line.print if line is not None else _print
        for event in execute_run_events(reconstructable_job(), run, instance):
            step = op_step_key(event.step_key or "")
            if event.event_type == DagsterEventType.STEP_START:
                say(f"  {step} ...")
                if is_copy_step(step):
                    copy_line.begin(step)
            elif event.event_type == DagsterEventType.STEP_OUTPUT:
                outputs[step] = {key: value.value for key, value in event.step_output_data.metadata.items()}
            elif event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
                copy_line.end()
                say(f"  {step} will retry: {innermost_message(event.step_retry_data.error)}")
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                copy_line.end()
                say(f"  {step} done")
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                copy_line.end()
                failure = failure or event
    finished = instance.get_run_by_id(run.run_id)
    if failure is not None or finished is None or not finished.is_success:
        where = f" in step {op_step_key(failure.step_key)}" if failure and failure.step_key else ""
        reason = failure_reason(failure) if failure else "the run did not succeed"
        print(f"bpsync: dataset {dataset_id}: sync failed{where}: {reason}", file=sys.stderr)
        print(f"bpsync: re-execute it from failure with: bpsync reexecute {run.run_id}", file=sys.stderr)
        return 1
    copied = {
        name: sum(int(metadata.get(name, 0)) for step, metadata in outputs.items() if is_copy_step(step))
        for name in ("files_copied", "files_skipped", "bytes_copied", "files_copied_server_side")
    }
    posted = outputs.get("post_manifest", {})
    print(
        f"bpsync: dataset {dataset_id} synced: {copied['files_copied']} files copied, "
        f"{copied['files_skipped']} already in place, {copied['bytes_copied']} bytes; "
        f"copy mode: {copy_modes(copied['files_copied'], copied['files_copied_server_side'])}; "
        f"manifest accepted by {posted.get('remote_url')} (HTTP {posted.get('remote_http_status')})"
    )
    return 0


def _print(text: str) -> None:
    print(text, flush=True)
