"""The `bpsync` command: `sync`, `reexecute`, `check`, `backfill` and `metrics`."""

import argparse
import logging
import os
import sys
from typing import NoReturn

from dagster import DagsterInstance

from bpsync_dagster.c4gh import KeyLoadError, load_node_keys
from bpsync_dagster.cli.backfill_command import NoRunQueue, backfill, parse_since
from bpsync_dagster.cli.check_command import check
from bpsync_dagster.cli.dry_run_command import dry_run
from bpsync_dagster.cli.metrics_command import CannotListen, serve_metrics
from bpsync_dagster.cli.sync_command import execute_with_progress
from bpsync_dagster.configuration import ConfigError, Settings, load_settings, start_logging
from bpsync_dagster.configuration.loader import config_location
from bpsync_dagster.configuration.settings import bandwidth_limit_problem
from bpsync_dagster.configuration.sizes import parse_data_size
from bpsync_dagster.dataset_ids import InvalidId, check_id
from bpsync_dagster.errors import SyncError
from bpsync_dagster.runs import launch, reexecute
from bpsync_dagster.sda_database import DatabaseError


class DagsterHomeNotSet(SyncError):
    """`DAGSTER_HOME` is unset: Dagster's own error says so in a paragraph."""


def _instance() -> DagsterInstance:
    if not os.environ.get("DAGSTER_HOME"):
        raise DagsterHomeNotSet("DAGSTER_HOME is not set: set it to the folder that holds dagster.yaml")
    return DagsterInstance.get()


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be a TCP port (0 to 65535), not {text!r}")
    return int(text)


def bandwidth_limit(value: str) -> int:
    """`--bwlimit`: bytes per second as a data size (`50MB`), `0` or `off` for no limit."""
    if value.strip().lower() == "off":
        return 0
    try:
        limit = parse_data_size(value, "--bwlimit")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(error.problems[0].removeprefix("--bwlimit ")) from None
    problem = bandwidth_limit_problem(limit)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return limit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bpsync", description="Bigpicture dataset sync on Dagster.")
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="sync one dataset now, recorded as a Dagster run")
    sync.add_argument("dataset_id")
    sync.add_argument("accession_ids", nargs="*", help="files to sync (default: every file of the dataset)")
    sync.add_argument(
        "--parallel-files", type=int, default=4, help="files of a copy batch copied at the same time (default 4)"
    )
    sync.add_argument("--max-batch-files", type=int, help="files per copy batch (default: the executor's)")
    sync.add_argument("--max-batch-bytes", type=int, help="bytes per copy batch (default: the executor's)")
    sync.add_argument(
        "--bwlimit",
        type=bandwidth_limit,
        metavar="SIZE",
        help="bytes per second the sync writes, over all its files, e.g. 50MB; 0 or off: no limit "
        "(default: sync.copy.bandwidthLimit)",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="list each file and what the sync would do with it, writing, posting and recording nothing",
    )
    reexecute = commands.add_parser("reexecute", help="re-execute a failed run from its failed step")
    reexecute.add_argument("run_id")
    commands.add_parser("check", help="check the configuration, keys and every connection")
    backfill = commands.add_parser(
        "backfill", help="backfill the synced_dataset partitions of local datasets never synced (or not since --since)"
    )
    backfill.add_argument(
        "--since", type=parse_since, help="a date or ISO timestamp: also datasets last synced before it"
    )
    backfill.add_argument("--dry-run", action="store_true", help="only list the datasets")
    metrics = commands.add_parser(
        "metrics", help="serve Prometheus metrics on /metrics, read from Dagster's instance and the broker"
    )
    metrics.add_argument("--port", type=_port, required=True, help="TCP port to listen on (0: any free one)")
    metrics.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    return parser


def _settings() -> Settings:
    """The configuration, read once for the command, with the service's logging configured from it."""
    settings = load_settings()
    start_logging(settings)
    return settings


def _run(arguments: argparse.Namespace) -> int:
    if arguments.command == "check":
        return check(_settings(), config_location())
    if arguments.command == "backfill":
        instance = _instance()
        return backfill(instance, _settings(), arguments.since, arguments.dry_run)
    if arguments.command == "metrics":
        instance = _instance()
        # Pooled connections, and no scrape held up by a query longer than 30 s.
        instance.optimize_for_webserver(statement_timeout=30_000, pool_recycle=3600, max_overflow=2)
        return serve_metrics(instance, _settings(), arguments.host, arguments.port)
    if arguments.command == "sync":
        check_id("dataset_id", arguments.dataset_id)
        for accession_id in arguments.accession_ids:
            check_id("accession ID", accession_id)
        if arguments.dry_run:
            return dry_run(_settings(), arguments.dataset_id, arguments.accession_ids)
    load_node_keys(_settings().crypt4gh)
    instance = _instance()
    # Keep one Postgres connection for the run's events instead of opening one per event.
    instance.optimize_for_webserver(statement_timeout=60_000, pool_recycle=3600, max_overflow=4)
    if arguments.command == "sync":
        limits = {
            key: value
            for key, value in (
                ("max_batch_files", arguments.max_batch_files),
                ("max_batch_bytes", arguments.max_batch_bytes),
            )
            if value is not None
        }
        run = launch.create_sync_run(
            instance,
            arguments.dataset_id,
            arguments.accession_ids,
            arguments.parallel_files,
            batch_limits=limits,
            bandwidth_limit=arguments.bwlimit,
        )
    else:
        run = reexecute.create_reexecution_from_failure(instance, arguments.run_id)
    return execute_with_progress(instance, run)


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return _run(arguments)
    except (
        ConfigError,
        KeyLoadError,
        InvalidId,
        reexecute.RunNotFound,
        reexecute.RunStillRunning,
        NoRunQueue,
        DatabaseError,
        DagsterHomeNotSet,
        CannotListen,
    ) as error:
        print(f"bpsync: {error}", file=sys.stderr)
        return 2


def entry_point() -> NoReturn:
    """`bpsync` as a command. Once everything is flushed it exits without the interpreter's
    teardown, which for Dagster's many modules takes most of a second."""
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
