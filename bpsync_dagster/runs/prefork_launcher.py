"""A run launcher that starts each run's worker from a warm fork server instead of a fresh interpreter.

Dagster's `DefaultRunLauncher` asks the code server to spawn a new Python process per run, which
imports Dagster and the project again: about 1.4 s of CPU before the first op, which on two cores
caps how many datasets a minute the service syncs. This launcher, in the daemon, starts a
`multiprocessing` fork server once, with Dagster and the project imported; each run's worker is
forked from it in milliseconds and executes the run as `dagster api execute_run` would (its own
process, event log, compute logs; the UI re-executes and terminates it like any run).

A worker is a process of its own: a crashed one does not take the daemon down, and a daemon that
stops leaves running workers to finish. The worker's pid and host are recorded as an engine event
(`runs.liveness`), so Dagster's run monitoring (`check_run_worker_health`) fails a run whose worker
died, the daemon's run retries re-execute it, and `terminate` signals it from the webserver.
"""

import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import threading
from collections.abc import Mapping
from typing import Any

from dagster import Array, DagsterRun, Field

from bpsync_dagster.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
    execute_launched_run,
)
from bpsync_dagster.runs.liveness import process_alive, report_worker, run_worker

DEFAULT_PRELOAD = ["dagster", "bpsync_dagster.definitions"]


class PreforkRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a worker forked from a fork server with `preload` modules imported."""

    def __init__(self, preload: list[str] | None = None, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._preload = list(DEFAULT_PRELOAD if preload is None else preload)
        self._context: Any = None
        self._lock = threading.Lock()
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "preload": Field(
                Array(str),
                is_required=False,
                default_value=DEFAULT_PRELOAD,
                description="Modules the fork server imports once, before it forks any worker.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> "PreforkRunLauncher":
        return cls(preload=config_value.get("preload"), inst_data=inst_data)

    def _fork_context(self) -> Any:
        # The fork server starts with the first run, so processes that never launch one (the
        # webserver, `bpsync`) do not start it.
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(self._preload)
                self._context = context
            return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        worker = self._fork_context().Process(
            target=execute_launched_run, args=(run.run_id, self._instance.get_ref()), name=f"run {run.run_id}"
        )
        worker.start()
        # Not a child this process waits for when it exits: a stopping daemon leaves its runs running.
        multiprocessing.process._children.discard(worker)  # type: ignore[attr-defined]
        report_worker(self._instance, run, worker.pid, "Forked process {pid} on {host} for this run")

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        worker = run_worker(self._instance, run_id) if run is not None and not run.is_finished else None
        if worker is None or worker.host != socket.gethostname() or not process_alive(worker.pid, worker.reported_at):
            return False
        self._instance.report_run_canceling(run)
        # The worker turns SIGTERM into the run's interruption and marks it CANCELED.
        os.kill(worker.pid, signal.SIGTERM)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = run_worker(self._instance, run.run_id)
        if worker is None or worker.host != socket.gethostname():
            # Not a worker this host can see (another launcher's, `bpsync` elsewhere): not judged.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker on this host to check")
        if process_alive(worker.pid, worker.reported_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker.pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the process executing this run ({worker.describe()}) is gone",
            run_worker_id=str(worker.pid),
        )
