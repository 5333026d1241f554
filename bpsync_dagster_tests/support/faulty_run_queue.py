"""A run queue with faults a test chooses by dataset ID, for the daemon to run against:

- the first enqueue of a run of a dataset whose ID ends in `-enqueue-dies-once` kills the daemon (as
  SIGKILL would), so that the run it has just created stays NOT_STARTED;
- every launch of a run of a dataset whose ID ends in `-launch-fails` fails, as when the run
  launcher's backend (Kubernetes, Docker) refuses it.

Everything else is Dagster's own `QueuedRunCoordinator` and `DefaultRunLauncher`.
"""

import os
from pathlib import Path

import yaml
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster_tests.support.environment import PROJECT_ROOT

ENQUEUE_DIES_ONCE = "-enqueue-dies-once"
LAUNCH_FAILS = "-launch-fails"


class FaultyRunCoordinator(QueuedRunCoordinator):
    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        dataset_id = context.dagster_run.tags.get(DATASET_TAG, "")
        if dataset_id.endswith(ENQUEUE_DIES_ONCE):
            marker = Path(os.environ["DAGSTER_HOME"]) / f"enqueue-died-{dataset_id}"
            if not marker.exists():
                marker.touch()
                os._exit(137)
        return super().submit_run(context)


class FaultyRunLauncher(DefaultRunLauncher):
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if run.tags.get(DATASET_TAG, "").endswith(LAUNCH_FAILS):
            raise DagsterLaunchFailedError(f"test fault: the launch of run {run.run_id} fails")
        super().launch_run(context)


def use_faulty_run_queue(dagster_home: Path) -> dict[str, str]:
    """Make the instance at `dagster_home` use these classes; returns the environment a daemon needs
    to import them."""
    config_file = dagster_home / "dagster.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["run_coordinator"].update(module=__name__, **{"class": FaultyRunCoordinator.__name__})
    config["run_launcher"] = {"module": __name__, "class": FaultyRunLauncher.__name__}
    config_file.write_text(yaml.safe_dump(config))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
