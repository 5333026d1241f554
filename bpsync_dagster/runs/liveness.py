"""Which process executes a run, and whether it is still alive.

A run whose process was killed (SIGKILL, OOM, a lost container) stays STARTED in Dagster for ever:
the default run launcher cannot tell that its worker died, and a STARTED run holds its queue slot
and its dataset's concurrency slot. Each run's worker is recorded as an engine event with its pid
(Dagster records one for the runs it launches, `bpsync sync` records its own with the host name);
a run whose worker is gone is marked failed, so that it can be re-executed, by hand or by the
daemon's run retries.
"""

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher, MetadataValue

from bpsync_dagster.dagster_internals import EngineEventData, unexpected_termination

PID_KEY = "pid"
HOST_KEY = "host"
# /proc's start times have a resolution of a clock tick, the boot time one of a second.
START_TIME_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class Worker:
    """The process a run's worker reported, and when it reported it."""

    pid: int
    host: str | None
    reported_at: float

    def describe(self) -> str:
        return f"pid {self.pid}" + (f" on {self.host}" if self.host else "")


def announce_worker(instance: DagsterInstance, run: DagsterRun) -> None:
    """Record this process as the run's worker (for runs executed in the `bpsync` process)."""
    report_worker(instance, run, os.getpid(), "bpsync executes this run in process {pid} on {host}")


def report_worker(instance: DagsterInstance, run: DagsterRun, pid: int, message: str) -> None:
    """Record process `pid` of this host as the run's worker; `message` may name `{pid}` and `{host}`."""
    host = socket.gethostname()
    instance.report_engine_event(
        message.format(pid=pid, host=host),
        run,
        EngineEventData(metadata={PID_KEY: MetadataValue.text(str(pid)), HOST_KEY: MetadataValue.text(host)}),
    )


def run_worker(instance: DagsterInstance, run_id: str) -> Worker | None:
    """The worker a run's engine events name: the last one `bpsync` recorded (with its host), else
    the last one Dagster recorded."""
    workers: list[Worker] = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.engine_event_data.metadata if entry.dagster_event else {}
        pid = metadata.get(PID_KEY)
        if pid is not None and str(pid.value).isdigit():
            host = metadata.get(HOST_KEY)
            workers.append(Worker(int(pid.value), str(host.value) if host else None, entry.timestamp))
    with_host = [worker for worker in workers if worker.host is not None]
    return (with_host or workers or [None])[-1]


def dead_worker(instance: DagsterInstance, run: DagsterRun) -> Worker | None:
    """The run's worker if it is known to be gone and left the run unfinished: only a worker on this host
    can be checked."""
    worker = run_worker(instance, run.run_id)
    if worker is None:
        return None
    if worker.host is None:
        # Dagster's own record has no host: the default launcher starts runs from the code server,
        # on the host where this code (a sensor, or `bpsync`) runs.
        if not isinstance(instance.run_launcher, DefaultRunLauncher):
            return None
    elif worker.host != socket.gethostname():
        return None
    if process_alive(worker.pid, worker.reported_at):
        return None
    # Read again once the process is known gone: a run it finished in the meantime shows as finished.
    current = instance.get_run_by_id(run.run_id)
    return worker if current is not None and not current.is_finished else None


def fail_dead_run(instance: DagsterInstance, run: DagsterRun, worker: Worker) -> None:
    """Mark a run whose worker died as failed, as Dagster's run monitoring would."""
    instance.report_run_failed(
        run,
        f"the process executing this run ({worker.describe()}) is gone; marked failed so it can be re-executed",
        unexpected_termination(),
    )


def process_alive(pid: int, started_by: float) -> bool:
    """Whether process `pid` runs (not a zombie) and already ran at `started_by` (a Unix time), i.e.
    it is not a later process that reuses the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = stat.rpartition(")")[2].split()
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X", "x"):
        return False
    started_at = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    return started_at <= started_by + START_TIME_TOLERANCE_SECONDS


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime line")
