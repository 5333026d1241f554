"""`python -m bpsync_dagster.daemon run -w workspace.yaml`: Dagster's daemon with its sensor loop every
second instead of every five.

The daemon evaluates sensors in a loop that sleeps 5 s between passes, whatever the sensors' own
minimum interval, so a published mapping waited 0-5 s (1.9 s median) before the mapping sensor read
it. With a pass every second it waits 0-1 s. Each pass reads the sensors' state from the instance;
a sensor whose `minimum_interval_seconds` has not elapsed (the other sensors: 30 s and more) is
skipped without being evaluated. Everything else is `dagster-daemon`: the arguments are its own.
"""

from bpsync_dagster.dagster_internals import run_dagster_daemon

SENSOR_LOOP_SECONDS = 1.0


def main() -> None:
    run_dagster_daemon(SENSOR_LOOP_SECONDS)


if __name__ == "__main__":
    main()
