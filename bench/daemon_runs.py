#!/usr/bin/env python3
"""Latency and many-datasets benchmark of the service under the real `dagster-daemon` (issue 5, items 4, 5).

    python bench/daemon_runs.py            # every setting (about 20 minutes)
    python bench/daemon_runs.py --quick    # shipped settings only, 2 messages and 5 datasets, for CI
    python bench/daemon_runs.py --variants launch --datasets 200   # the run launchers and the sensor loop (issue 17)

Each setting gets a service of its own, built from the tests' support code
(`bpsync_dagster_tests.support`): a `DAGSTER_HOME` whose `dagster.yaml` is the shipped one with the
setting's edits, a Dagster database of its own, a stream topology with a unique prefix, and the real
`dagster-daemon` loading the project's `workspace.yaml`. One SDA database and one stand-in remote sync
API (which timestamps every accepted POST) serve every setting. Everything is removed at the end,
also after a failure or Ctrl-C.

Latency: one-file dataset mappings are published one at a time, each after a random 0-5 s pause that
follows the previous POST (so the phase against the daemon's 5 s sensor loop varies); publish → POST
is split with Dagster's own records: the sensor tick that created the run, the run's creation time,
its RUN_STARTING and RUN_START events. Many datasets: one-file datasets published at once; publish →
last POST, and the runs created.
"""

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import dagster as dg  # noqa: E402
from dagster._core.scheduler.instigation import InstigatorType  # noqa: E402
from results_table import print_table, row  # noqa: E402

from bpsync_dagster.jobs import DATASET_TAG  # noqa: E402
from bpsync_dagster.sensors import MAPPING_SENSOR_NAME  # noqa: E402
from bpsync_dagster_tests.support import crypt4gh_files  # noqa: E402
from bpsync_dagster_tests.support.daemon import Daemon, wait_until  # noqa: E402
from bpsync_dagster_tests.support.environment import (  # noqa: E402
    FILE_SYNC_SCHEMA,
    NODE_PASSPHRASE,
    REMOTE_PASSWORD,
    REMOTE_USER,
    Node,
    create_dagster_database,
    create_sda_database,
    drop_database,
    make_dagster_home,
)
from bpsync_dagster_tests.support.rabbitmq import Topology, topology  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402
from bpsync_dagster_tests.support.s3_server import S3Server  # noqa: E402
from bpsync_dagster_tests.support.sensor_ticks import mapping  # noqa: E402

LATENCY = "5 latency"
MANY = "6 many datasets"
LATENCY_TARGET_SECONDS = 8.0
MAX_PAUSE_SECONDS = 5.0

Row = dict[str, object]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """A variant of the shipped configuration: edits to `dagster.yaml` and service environment variables."""

    name: str
    dagster_yaml: Callable[[dict[str, Any]], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    dagster_daemon: bool = False  # Dagster's `dagster-daemon` (sensor loop every 5 s), not the shipped command


def _default_dequeue(config: dict[str, Any]) -> None:
    for key in ("dequeue_interval_seconds", "dequeue_use_threads"):
        config["run_coordinator"]["config"].pop(key)


def _no_queue(config: dict[str, Any]) -> None:
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}


def _default_launcher(config: dict[str, Any]) -> None:
    config["run_launcher"] = {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"}


def _max_runs(limit: int) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        config["run_coordinator"]["config"]["max_concurrent_runs"] = limit

    return edit


SHIPPED = Setting("shipped settings")
LATENCY_VARIANTS = (
    Setting("sync.sensor.interval 30 s", env={"SYNC_SENSOR_INTERVAL": "30"}),
    Setting("default dequeue (5 s, no threads)", _default_dequeue),
    Setting("DefaultRunCoordinator (no queue, no dataset_id limit)", _no_queue),
)
MANY_DATASETS_TIMEOUT = 420


def many_timeout(count: int) -> int:
    """Seconds to wait for the POSTs of `count` datasets published at once."""
    return max(MANY_DATASETS_TIMEOUT, 4 * count)


MANY_VARIANTS = (
    Setting("max_concurrent_runs 4", _max_runs(4)),
    Setting("max_concurrent_runs 20", _max_runs(20)),
)
DEFAULT_LAUNCHER = Setting("DefaultRunLauncher (a new process per run)", _default_launcher)
BEFORE = Setting("DefaultRunLauncher, dagster-daemon (5 s sensor loop)", _default_launcher, dagster_daemon=True)
LAUNCH_VARIANTS = (
    BEFORE,
    DEFAULT_LAUNCHER,
    Setting("dagster-daemon (5 s sensor loop)", dagster_daemon=True),
)
VARIANTS = {"settings": (LATENCY_VARIANTS, MANY_VARIANTS), "launch": (LAUNCH_VARIANTS, LAUNCH_VARIANTS[:2])}


class PostClock:
    """When the stand-in remote API first accepted a manifest, per dataset (wall clock)."""

    def __init__(self) -> None:
        self._times: dict[str, float] = {}
        self._changed = threading.Condition()

    def accept(self, document: dict[str, Any]) -> None:
        with self._changed:
            self._times.setdefault(document["dataset_id"], time.time())
            self._changed.notify_all()

    def wait(self, dataset_ids: list[str], timeout: float) -> dict[str, float]:
        """The POST times of `dataset_ids`, once all have arrived or `timeout` has passed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not all(name in self._times for name in dataset_ids) and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return {name: self._times[name] for name in dataset_ids if name in self._times}


@dataclass
class BenchNode(Node):
    """The tests' `Node`, on the benchmark's own SDA database."""

    sda_database_name: str = ""

    def config(self) -> dict[str, object]:
        config = super().config()
        config["db"]["database"] = self.sda_database_name
        return config


@dataclass
class Shared:
    """What every setting's service uses: keys, the SDA database, the remote API and its clock."""

    workdir: Path
    keys: tuple[crypt4gh_files.KeyPair, crypt4gh_files.KeyPair]
    sda_database: str
    sda_dsn: str
    remote: StandInRemoteApi
    posts: PostClock
    tag: str


@contextmanager
def shared_environment(workdir: Path) -> Iterator[Shared]:
    tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    keys_dir = workdir / "keys"
    keys_dir.mkdir(parents=True)
    keys = (
        crypt4gh_files.make_key_pair(keys_dir, "node", NODE_PASSPHRASE),
        crypt4gh_files.make_key_pair(keys_dir, "receiver", "receiver-passphrase"),
    )
    sda_database = f"bpsync_bench_sda_{tag}"
    posts = PostClock()
    with ExitStack() as stack:
        stack.callback(drop_database, sda_database)
        sda_dsn = create_sda_database(sda_database)
        remote = stack.enter_context(
            StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA, on_accept=posts.accept)
        )
        yield Shared(workdir, keys, sda_database, sda_dsn, remote, posts, tag)


@dataclass(frozen=True)
class RunTimes:
    """Publish → POST of one dataset, split with Dagster's records (wall-clock seconds since the epoch)."""

    published: float
    tick_started: float
    created: float
    starting: float
    started: float
    posted: float

    def phases(self) -> dict[str, float]:
        # A tick that began before the publish and read the message while it waited has no wait.
        read_from = max(self.tick_started, self.published)
        return {
            "publish → POST received (whole)": self.posted - self.published,
            "publish → run created (waiting for the sensor tick)": self.created - self.published,
            "  of which publish → tick start": read_from - self.published,
            "  of which tick start → run created": self.created - read_from,
            "run created → RUN_START (queue + launch)": self.started - self.created,
            "  of which created → RUN_STARTING (queue)": self.starting - self.created,
            "  of which RUN_STARTING → RUN_START (run process start-up)": self.started - self.starting,
            "RUN_START → POST received (ops)": self.posted - self.started,
        }


class Service:
    """One setting's running service: Dagster home and database, stream topology, node, daemon."""

    def __init__(self, shared: Shared, setting: Setting, stack: ExitStack, progress: Progress) -> None:
        self.shared = shared
        self.setting = setting
        directory = shared.workdir / f"service-{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        dagster_database = f"bpsync_bench_dagster_{shared.tag}_{uuid.uuid4().hex[:6]}"
        stack.callback(drop_database, dagster_database)
        dagster_env = create_dagster_database(dagster_database)
        dagster_home = make_dagster_home(directory / "dagster_home")
        if setting.dagster_yaml is not None:
            config_file = dagster_home / "dagster.yaml"
            config = yaml.safe_load(config_file.read_text())
            setting.dagster_yaml(config)
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        self.node = BenchNode(
            root=directory / "node",
            archive="posix",
            sync="posix",
            node_keys=shared.keys[0],
            receiver_keys=shared.keys[1],
            sda_dsn=shared.sda_dsn,
            s3=S3Server(),  # never started: storage is POSIX
            remote=shared.remote,
            dagster_home=dagster_home,
            dagster_env=dagster_env,
            prefix=f"b{uuid.uuid4().hex[:8]}",
            sda_database_name=shared.sda_database,
        )
        self.names: Topology = stack.enter_context(topology(self.node.prefix, "stream"))
        self.node.extra_env = {
            "BROKER_QUEUE": self.names.mapping_queue,
            "BROKER_EXCHANGE": self.names.exchange,
            **setting.env,
        }
        self.instance = self.node.instance()
        stack.callback(self.instance.dispose)
        self.daemon = Daemon(self.node.environment(), directory / "daemon.log", setting.dagster_daemon)
        stack.callback(self.daemon.kill)
        started = time.monotonic()
        self.daemon.start()
        wait_until(self._cursor_pinned, 180, "the sensor's first tick")
        progress(f"{setting.name}: daemon up, first sensor tick after {time.monotonic() - started:.0f} s")

    def _sensor_state(self) -> Any:
        states = self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        return next((state for state in states if state.name == MAPPING_SENSOR_NAME), None)

    def _cursor_pinned(self) -> bool:
        if self.daemon.exit_status() is not None:
            raise RuntimeError(f"dagster-daemon exited:\n{self.daemon.log()[-3000:]}")
        state = self._sensor_state()
        cursor = state.instigator_data.cursor if state and state.instigator_data else None
        return bool(cursor) and json.loads(cursor).get("queue") == self.names.mapping_queue

    def seed(self, name: str) -> tuple[str, str]:
        """A one-file (1 KiB) dataset in the SDA database and archive: its ID and accession ID."""
        dataset_id = self.node.dataset_id(name)
        (seeded,) = self.node.add_dataset(dataset_id, [(f"{name}.c4gh", os.urandom(1024))])
        return dataset_id, seeded.accession_id

    def publish(self, dataset: tuple[str, str]) -> float:
        published = time.time()
        self.names.publish(mapping(*dataset))
        return published

    def run_records(self, dataset_ids: set[str]) -> list[dg.RunRecord]:
        """The runs of these datasets, retries included, newest first."""
        return [
            record
            for record in self.instance.get_run_records()
            if record.dagster_run.tags.get(DATASET_TAG) in dataset_ids
        ]

    def wait_for_runs_to_finish(self, timeout: float) -> None:
        wait_until(
            lambda: all(record.dagster_run.is_finished for record in self.instance.get_run_records()),
            timeout,
            "the runs to finish",
        )

    def run_times(self, dataset_id: str, published: float, posted: float) -> RunTimes:
        records = self.run_records({dataset_id})
        succeeded = [record for record in records if record.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
        record = (succeeded or records)[-1]
        run_id = record.dagster_run.run_id
        events = {
            entry.dagster_event.event_type: entry.timestamp
            for entry in self.instance.all_logs(run_id)
            if entry.dagster_event is not None
        }
        state = self._sensor_state()
        ticks = self.instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)
        tick = next(tick for tick in ticks if run_id in tick.run_ids)
        return RunTimes(
            published=published,
            tick_started=tick.timestamp,
            created=record.create_timestamp.timestamp(),
            starting=events.get(dg.DagsterEventType.RUN_STARTING, float("nan")),
            started=record.start_time or events[dg.DagsterEventType.RUN_START],
            posted=posted,
        )


@contextmanager
def running(shared: Shared, setting: Setting, progress: Progress) -> Iterator[Service]:
    with ExitStack() as stack:
        yield Service(shared, setting, stack, progress)


def latency(service: Service, messages: int, progress: Progress) -> list[RunTimes]:
    """Publish one-file datasets one at a time, each after a random pause following the previous POST."""
    datasets = [service.seed(f"latency{number:02d}") for number in range(messages)]
    timeout = 60 + 3 * int(service.setting.env.get("SYNC_SENSOR_INTERVAL", "1"))
    sent: list[tuple[str, float, float]] = []
    for dataset in datasets:
        time.sleep(random.uniform(0, MAX_PAUSE_SECONDS))
        published = service.publish(dataset)
        posted = service.shared.posts.wait([dataset[0]], timeout).get(dataset[0])
        if posted is None:
            raise TimeoutError(f"{service.setting.name}: no POST for {dataset[0]} after {timeout} s")
        sent.append((dataset[0], published, posted))
        progress(f"{service.setting.name}: message {len(sent)}/{messages}: publish → POST {posted - published:.1f} s")
    service.wait_for_runs_to_finish(120)
    return [service.run_times(*item) for item in sent]


def latency_rows(case: str, times: list[RunTimes], baseline: float | None) -> list[Row]:
    """Median and max publish → POST, and the median of each phase."""
    phases = [item.phases() for item in times]
    whole = [item["publish → POST received (whole)"] for item in phases]
    median = statistics.median(whole)
    runs = len(times)
    shipped = baseline is None
    target = f"median ≤ {LATENCY_TARGET_SECONDS:.0f} s with shipped settings" if shipped else ""
    rows = [
        row(
            LATENCY,
            case,
            "publish → POST received, median",
            median,
            "s",
            "itself" if shipped else "shipped settings",
            1.0 if shipped else median / baseline,
            target,
            median <= LATENCY_TARGET_SECONDS if shipped else None,
            runs,
        )
    ]
    rows.append(
        row(LATENCY, case, "publish → POST received, max", max(whole), "s", "median", max(whole) / median, runs=runs)
    )
    for name in list(phases[0])[1:]:
        value = statistics.median(item[name] for item in phases)
        rows.append(row(LATENCY, case, f"{name}, median", value, "s", "whole, median", value / median, runs=runs))
    return rows


def many_datasets(service: Service, count: int, progress: Progress) -> dict[str, float]:
    """Publish `count` one-file datasets at once; publish → last POST and → last run created, runs made."""
    datasets = [service.seed(f"many{number:03d}") for number in range(count)]
    started = time.time()
    for dataset in datasets:
        service.publish(dataset)
    published = time.time()
    timeout = many_timeout(count)
    posts = list(service.shared.posts.wait([dataset_id for dataset_id, _ in datasets], timeout).values())
    service.wait_for_runs_to_finish(300)
    records = service.run_records({dataset_id for dataset_id, _ in datasets})
    created = [record.create_timestamp.timestamp() for record in records]
    succeeded = sum(record.dagster_run.status == dg.DagsterRunStatus.SUCCESS for record in records)
    nan = float("nan")
    result = {
        "publishing": published - started,
        "last_post": max(posts) - started if len(posts) == count else nan,
        "first_post": min(posts) - started if posts else nan,
        "last_created": max(created) - started,
        "posts": float(len(posts)),
        "runs": float(len(records)),
        "succeeded": float(succeeded),
    }
    progress(
        f"{service.setting.name}: {count} datasets: {len(posts)} POSTs, {len(records)} runs ({succeeded} succeeded), "
        f"publish → last POST {result['last_post']:.1f} s"
    )
    return result


def many_rows(case: str, count: int, result: dict[str, float], baseline: float | None) -> list[Row]:
    whole = result["last_post"]
    return [
        row(
            MANY,
            case,
            f"{count} datasets: publish → last POST",
            whole,
            "s",
            "itself" if baseline is None else "shipped settings",
            1.0 if baseline is None else whole / baseline,
            runs=1,
        ),
        row(
            MANY,
            case,
            "  publish → first POST",
            result["first_post"],
            "s",
            "last POST",
            result["first_post"] / whole,
            runs=1,
        ),
        row(
            MANY,
            case,
            "  publish → last run created",
            result["last_created"],
            "s",
            "last POST",
            result["last_created"] / whole,
            runs=1,
        ),
        row(MANY, case, "  publishing the messages", result["publishing"], "s", runs=1),
        row(MANY, case, "  datasets synced per minute", count / whole * 60, "datasets/min", runs=1),
        row(
            MANY,
            case,
            f"datasets POSTed (within {many_timeout(count)} s)",
            result["posts"],
            "datasets",
            "datasets",
            result["posts"] / count,
            runs=1,
        ),
        row(MANY, case, "runs created", result["runs"], "runs", "datasets", result["runs"] / count, runs=1),
        row(MANY, case, "runs succeeded", result["succeeded"], "runs", "datasets", result["succeeded"] / count, runs=1),
    ]


def measure(
    workdir: Path,
    quick: bool,
    progress: Progress,
    parts: tuple[str, ...] = ("latency", "many"),
    variants: str = "settings",
    datasets: int | None = None,
    messages: int | None = None,
) -> list[Row]:
    """Run every setting of `variants` (only the shipped one with `quick`) and return the table rows.

    Each setting's rows also go to `progress` as soon as they are measured.
    """
    shipped_messages, variant_messages, count = (2, 0, 5) if quick else (10, 5, 50)
    shipped_messages, variant_messages = (messages, messages) if messages else (shipped_messages, variant_messages)
    count = datasets or count
    latency_variants, many_variants = VARIANTS[variants]
    rows: list[Row] = []
    many: list[Row] = []

    def add(into: list[Row], new: list[Row]) -> None:
        into += new
        progress("\n" + print_table(new))

    with shared_environment(workdir) as shared:
        with running(shared, SHIPPED, progress) as service:
            times = latency(service, shipped_messages, progress)
            add(rows, latency_rows(SHIPPED.name, times, None))
            baseline = statistics.median(item.posted - item.published for item in times)
            if "many" in parts:
                shipped_many = many_datasets(service, count, progress)
                add(many, many_rows(SHIPPED.name, count, shipped_many, None))
        for setting in latency_variants if not quick and "latency" in parts else ():
            with running(shared, setting, progress) as service:
                add(rows, latency_rows(setting.name, latency(service, variant_messages, progress), baseline))
        for setting in many_variants if not quick and "many" in parts else ():
            with running(shared, setting, progress) as service:
                result = many_datasets(service, count, progress)
                add(many, many_rows(setting.name, count, result, shipped_many["last_post"]))
    return rows + many


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shipped settings only, 2 messages, 5 datasets (CI)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument(
        "--only", nargs="+", choices=("latency", "many"), default=["latency", "many"], help="run only these parts"
    )
    parser.add_argument(
        "--variants",
        choices=sorted(VARIANTS),
        default="settings",
        help="settings: sensor interval, dequeue, coordinator, run limit; launch: run launcher and sensor loop",
    )
    parser.add_argument("--datasets", type=int, help="datasets published at once (default 50, 5 with --quick)")
    parser.add_argument("--messages", type=int, help="latency messages per setting (default 10 shipped, 5 others)")
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory (default: $TMPDIR)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as on Ctrl-C
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"bench: [{time.monotonic() - started:6.0f} s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bpsync-daemon-bench-", dir=args.workdir) as workdir:
        rows = measure(
            Path(workdir), args.quick, progress, tuple(args.only), args.variants, args.datasets, args.messages
        )
    table = print_table(rows)
    print(f"\n{table}\n\nbench: done in {time.monotonic() - started:.0f} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "table": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
