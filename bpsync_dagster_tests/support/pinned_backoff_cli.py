"""`bpsync` for fault tests: the real command, with its retry back-off predictable and short.

Dagster's full jitter draws a random fraction of each retry's exponential delay, so two runs of a
test wait differently and the gaps between attempts need not grow. With `BPSYNC_TEST_JITTER` set,
that fraction is pinned (e.g. 0.25: every delay is a quarter of the policy's cap). With
`BPSYNC_TEST_REMOTE_READ_TIMEOUT` set, a new run's config also sets the `remote_api` resource's
`read_timeout_seconds`: a plain Dagster run config setting, which `bpsync sync` has no option for.
A re-execution reuses its parent's run config, and so the timeout too.

`python -m bpsync_dagster_tests.support.pinned_backoff_cli sync DATASET_ID`
"""

import importlib
import os
from collections.abc import Callable

from dagster._core.definitions import policy

from bpsync_dagster.cli import main as cli_main

JITTER_VARIABLE = "BPSYNC_TEST_JITTER"
READ_TIMEOUT_VARIABLE = "BPSYNC_TEST_REMOTE_READ_TIMEOUT"


def pin_jitter(fraction: float) -> None:
    policy.random = lambda: fraction


# Where `bpsync sync` finds the run config of a new run (it has moved between these modules).
RUN_CONFIG_MODULES = ("bpsync_dagster.sync_runs", "bpsync_dagster.cli.runs")


def set_remote_read_timeout(seconds: float) -> None:
    for name in RUN_CONFIG_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        plain_config = getattr(module, "sync_run_config", None)
        if plain_config is not None:
            module.sync_run_config = with_read_timeout(plain_config, seconds)


RunConfigMaker = Callable[..., dict[str, object]]


def with_read_timeout(plain_config: RunConfigMaker, seconds: float) -> RunConfigMaker:
    def config_with_read_timeout(*arguments: object, **options: object) -> dict[str, object]:
        config = plain_config(*arguments, **options)
        config["resources"] = {"remote_api": {"config": {"read_timeout_seconds": seconds}}}
        return config

    return config_with_read_timeout


if __name__ == "__main__":
    if os.environ.get(JITTER_VARIABLE):
        pin_jitter(float(os.environ[JITTER_VARIABLE]))
    if os.environ.get(READ_TIMEOUT_VARIABLE):
        set_remote_read_timeout(float(os.environ[READ_TIMEOUT_VARIABLE]))
    cli_main.entry_point()
