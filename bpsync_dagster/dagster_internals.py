"""The parts of Dagster that bpsync needs and Dagster 1.13 does not export; each says why.

The rest of the package uses Dagster's public names only (`bpsync_dagster_tests/test_public_api.py`
keeps it so). A Dagster upgrade that moves one of these breaks here, and only here.
"""

import sys
import time
from collections.abc import Iterator, Sequence

from dagster import AssetKey, DagsterEvent, DagsterInstance, DagsterRun, Definitions, JobDefinition
from dagster._cli.api import _execute_run_command_body
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import EngineEventData, JobFailureData, RunFailureReason
from dagster._core.execution.api import create_execution_plan, execute_run_iterator
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorType
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.error import SerializableErrorInfo
from dagster._utils.interrupts import capture_interrupts

__all__ = [
    "IMPLICIT_ASSET_JOB_NAME",
    "PARTITION_TAG",
    "RESUME_RETRY_TAG",
    "ROOT_RUN_ID_TAG",
    "PARENT_RUN_ID_TAG",
    "RUN_KEY_TAG",
    "SENSOR_NAME_TAG",
    "SYSTEM_TAG_PREFIX",
    "WILL_RETRY_TAG",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "EngineEventData",
    "InstanceRef",
    "LaunchRunContext",
    "RunLauncher",
    "WorkerStatus",
    "ReconstructableJob",
    "RemoteJobOrigin",
    "SerializableErrorInfo",
    "create_resume_retry_run",
    "execute_launched_run",
    "execute_run_events",
    "run_dagster_daemon",
    "sensor_cursors",
    "submit_partition_backfill",
    "unexpected_termination",
    "workspace_job",
    "workspace_job_origin",
]

# Run tags that Dagster sets and reads, defined in dagster/_core/storage/tags.py with no public constant.
SYSTEM_TAG_PREFIX = "dagster/"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
WILL_RETRY_TAG = "dagster/will_retry"
PARENT_RUN_ID_TAG = "dagster/parent_run_id"
ROOT_RUN_ID_TAG = "dagster/root_run_id"
RESUME_RETRY_TAG = "dagster/is_resume_retry"
PARTITION_TAG = "dagster/partition"

# IMPLICIT_ASSET_JOB_NAME: the job of a partition backfill or a materialization launched from the UI; not exported.
# EngineEventData: the data `DagsterInstance.report_engine_event` takes (a worker's pid); not exported.
# SerializableErrorInfo: the type of the errors step failure and retry events carry; not exported.
# ReconstructableJob: the type `workspace_job` returns; `dg.reconstructable` returns one but Dagster exports no name for it.
# RemoteJobOrigin: the type `workspace_job_origin` returns; not exported.
# RunLauncher, LaunchRunContext, CheckRunHealthResult, WorkerStatus, ConfigurableClass, ConfigurableClassData,
# InstanceRef: what a run launcher named in dagster.yaml implements and receives; Dagster exports only its own launchers.


def unexpected_termination() -> JobFailureData:
    """What `DagsterInstance.report_run_failed` records for a run whose process died: the daemon's run
    retries then treat it as terminated, not as failed in a step. `JobFailureData` and
    `RunFailureReason` are not exported."""
    return JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)


def workspace_job(module_name: str, job_name: str) -> ReconstructableJob:
    """A job of the `Definitions` named `defs` in `module_name`, as the code server loads it.
    `dg.reconstructable` takes only a module-level job or job factory, not a job of a `Definitions`."""
    repository = ReconstructableRepository.for_module(module_name, "defs", working_directory=None)
    return repository.get_reconstructable_job(job_name)


def workspace_job_origin(module_name: str, location_name: str, repository_name: str, job_name: str) -> RemoteJobOrigin:
    """The origin the webserver and the daemon give `job_name` of a code location loaded from
    `module_name` with this interpreter. A run needs it for the UI to re-execute it and for the queue to
    launch it; Dagster builds it only from a loaded workspace and exports no constructor."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=module_name),
        location_name=location_name,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, repository_name), job_name)


def create_resume_retry_run(
    instance: DagsterInstance,
    job: ReconstructableJob,
    origin: RemoteJobOrigin,
    parent: DagsterRun,
    tags: dict[str, str],
) -> DagsterRun:
    """A run of the parent's failed and skipped steps that reuses the outputs of its successful ones:
    what `dg.ReexecutionOptions.from_failure` stands for. `dg.execute_job` builds that plan only for a
    run it creates and executes at once, without `origin` (so neither the UI nor the daemon could
    re-execute it) and without handing the run over before it ends."""
    step_keys, known_state = KnownExecutionState.build_resume_retry_reexecution(instance=instance, parent_run=parent)
    plan = create_execution_plan(
        job, parent.run_config, step_keys_to_execute=step_keys, known_state=known_state, tags=parent.tags
    )
    job_definition: JobDefinition = job.get_definition()
    return instance.create_run_for_job(
        job_def=job_definition,
        execution_plan=plan,
        run_config=parent.run_config,
        tags=tags,
        root_run_id=parent.root_run_id or parent.run_id,
        parent_run_id=parent.run_id,
        remote_job_origin=origin,
        job_code_origin=job.get_python_origin(),
    )


def run_dagster_daemon(sensor_loop_seconds: float) -> None:
    """The `dagster-daemon` command (arguments from `sys.argv`), its sensors evaluated every
    `sensor_loop_seconds`: the daemon does so every 5 s (`MIN_INTERVAL_LOOP_TIME`, a module constant its
    loop reads on each pass) whatever a sensor's `minimum_interval_seconds`, and no instance setting
    changes it. Imported here, not at the top: only the daemon needs its command."""
    from dagster._daemon import sensor
    from dagster._daemon.cli import main

    sensor.MIN_INTERVAL_LOOP_TIME = sensor_loop_seconds
    main()


def execute_launched_run(run_id: str, instance_ref: InstanceRef) -> None:
    """Execute a launched run in this process, as `dagster api execute_run` does in the process a launcher
    starts: it records the process's pid, runs the cancellation and metrics threads the instance asks
    for, and turns SIGTERM into the run's interruption (CANCELED). The command's body has no public name."""
    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


def execute_run_events(job: ReconstructableJob, run: DagsterRun, instance: DagsterInstance) -> Iterator[DagsterEvent]:
    """Execute a run created beforehand, in this process, yielding its events as they happen.
    `dg.execute_job` creates its own run and returns only once it ended."""
    return execute_run_iterator(job, run, instance)


def submit_partition_backfill(
    instance: DagsterInstance,
    definitions: Definitions,
    asset_key: AssetKey,
    partition_keys: Sequence[str],
    tags: dict[str, str],
    title: str,
) -> str:
    """Dagster's own backfill of these partitions of `asset_key`, as the UI's "Materialize" of a partition
    selection (GraphQL `launchPartitionBackfill`) records it; the daemon's backfill loop then submits its
    runs to the run queue. Its ID. Dagster offers no public way to create a backfill but the webserver's
    GraphQL API, which needs the webserver running."""
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=definitions.resolve_asset_graph(),
        partition_names=list(partition_keys),
        asset_selection=[asset_key],
        backfill_timestamp=time.time(),
        tags=tags,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title,
        description=None,
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def sensor_cursors(instance: DagsterInstance, sensor_name: str) -> list[str]:
    """The cursors the daemon stored for sensors named `sensor_name` (one per code location that has
    one). Dagster reads a sensor's state only by its selector (location, repository and name), built
    from a loaded workspace, and exports no `InstigatorType` to list the states by kind."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return [
        state.instigator_data.cursor
        for state in states
        if state.name == sensor_name and state.instigator_data is not None and state.instigator_data.cursor
    ]
