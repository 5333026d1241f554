"""`bpsync` for fault tests: the real command, with its retry back-off predictable and short.

Dagster's full jitter draws a random fraction of each retry's exponential delay, so two runs of a
test wait differently and the gaps between attempts need not grow. With `BPSYNC_TEST_JITTER` set,
that fraction is pinned (e.g. 0.25: every delay is a quarter of the policy's cap).

`python -m bpsync_dagster_tests.support.pinned_backoff_cli sync DATASET_ID`
"""

import os

from dagster._core.definitions import policy

from bpsync_dagster.cli import main as cli_main

JITTER_VARIABLE = "BPSYNC_TEST_JITTER"


def pin_jitter(fraction: float) -> None:
    policy.random = lambda: fraction


if __name__ == "__main__":
    if os.environ.get(JITTER_VARIABLE):
        pin_jitter(float(os.environ[JITTER_VARIABLE]))
    cli_main.entry_point()
