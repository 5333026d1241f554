#!/usr/bin/env python3
"""Soak test of the whole service under random faults (issue 6, part 4).

    python soak/run.py [--datasets 200] [--files 5] [--seed N] [--json PATH]

It builds a node of its own: crypt4gh keys, an SDA database on a private PostgreSQL cluster with
`--datasets` datasets of `--files` small encrypted files each (1-64 KiB, contents from the seeded
RNG) in a POSIX archive, S3 sync storage on a moto server it can stop and start, the stand-in remote
API, a private RabbitMQ node with SDA's stream topology, an isolated Dagster instance (a database of
its own on the local PostgreSQL, DAGSTER_HOME with the shipped dagster.yaml) and the real
`dagster-daemon`, which reaches RabbitMQ through a proxy that holds each delivery the broker sends
a random 0 to `--broker-delay` seconds (3 by default: a loaded broker). It publishes one mapping
message per dataset, and the poison messages of the sensor tests (a NUL in a dataset or accession
ID, a 10,000-character dataset ID, a correlation id that is not UTF-8, a 16 MiB invalid message),
shuffled into bursts across the first minute (retrying with confirms while the broker restarts, as
an upstream SDA service would) and meanwhile,
at random intervals, injects one fault at a time, each within the service's retry budgets: SIGKILL
of a running run's worker process (at most once per dataset's lineage of runs), S3 down for 1-5 s,
the remote API answering 500, closing the connection or hanging 1-5 s for its next 1-3 requests,
the private RabbitMQ node restarted, the SDA database restarted.

When every dataset is POSTed and every run has finished (or at `--timeout`, a failure) it prints a
summary and exits 0 only if every dataset is synced (POST accepted and every object decrypts with
the receiver's key to its plaintext), no message is lost, no run key has two root runs, no object
is corrupt or partial, no POST arrived before all of its dataset's files were in sync storage
(checked by the remote's `on_accept` at the moment of the POST), and every poison message got
exactly one info-error naming its cause and no run. The seed replays the same data and
the same sequence of fault choices (not their exact timing).
"""

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import dagster as dg  # noqa: E402
import pika.exceptions  # noqa: E402
from dagster._core.events import DagsterEventType  # noqa: E402
from dagster._core.storage.tags import RUN_KEY_TAG  # noqa: E402

from bpsync_dagster.jobs import DATASET_TAG, sync_dataset  # noqa: E402
from bpsync_dagster.jobs.failures import failure_reason  # noqa: E402
from bpsync_dagster.jobs.sync_dataset import op_step_key  # noqa: E402
from bpsync_dagster.runs.liveness import process_alive, run_worker  # noqa: E402
from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX  # noqa: E402
from bpsync_dagster_tests.support import crypt4gh_files  # noqa: E402
from bpsync_dagster_tests.support.daemon import Daemon  # noqa: E402
from bpsync_dagster_tests.support.delaying_proxy import DelayingProxy, Pacing  # noqa: E402
from bpsync_dagster_tests.support.environment import (  # noqa: E402
    FILE_SYNC_SCHEMA,
    NODE_PASSPHRASE,
    REMOTE_PASSWORD,
    REMOTE_USER,
    Node,
    SeededFile,
    create_dagster_database,
    drop_database,
    make_dagster_home,
    split_crypt4gh,
)
from bpsync_dagster_tests.support.faults import (  # noqa: E402
    ManifestWitness,
    open_multipart_uploads,
    use_private_sda_database,
)
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server  # noqa: E402
from bpsync_dagster_tests.support.poison import (  # noqa: E402
    PoisonMessages,
    info_error_problem,
    poison_dataset_ids,
    poison_messages,
)
from bpsync_dagster_tests.support.private_postgres import PrivatePostgres  # noqa: E402
from bpsync_dagster_tests.support.private_rabbitmq import PrivateRabbitMQ  # noqa: E402
from bpsync_dagster_tests.support.rabbitmq import Topology  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402
from bpsync_dagster_tests.support.sensor_ticks import mapping  # noqa: E402

KiB = 1024
FAULT_KINDS = (
    "kill_run_worker",
    "s3_outage",
    "remote_500",
    "remote_close",
    "remote_hang",
    "broker_restart",
    "sda_database_restart",
)
UNFINISHED_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# Runs all finished but a lineage ended in a failure: wait longer than the dead run reaper's interval
# plus a daemon loop for a retry that may still come.
SETTLE_SECONDS = 45
KILLS_PER_LINEAGE = 1  # the shipped run_retries allow 2; one is kept for the daemon's own run monitoring


class Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(f"soak: [{self.now():7.1f} s] {message}", flush=True)


@dataclass
class Fault:
    at: float
    kind: str
    detail: str


@dataclass
class Kill:
    at: float
    run_id: str
    root_run_id: str
    dataset_id: str
    pid: int
    steps_running: list[str]


class PatientWitness(ManifestWitness):
    """The faults module's `ManifestWitness`, holding `s3_lock` while it looks into sync storage, so
    that an injected S3 outage neither starts in the middle of a check nor passes for a missing object."""

    def __init__(self, s3_lock: threading.Lock) -> None:
        super().__init__()
        self.s3_lock = s3_lock
        self.accepted_at: dict[str, list[float]] = defaultdict(list)

    def __call__(self, manifest: dict[str, Any]) -> None:
        self.accepted_at[manifest["dataset_id"]].append(time.monotonic())
        with self.s3_lock:
            super().__call__(manifest)


# --------------------------------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------------------------------


@dataclass
class SoakNode:
    node: Node
    witness: PatientWitness
    s3: InterruptibleS3Server
    s3_lock: threading.Lock
    broker: PrivateRabbitMQ
    topology: Topology
    sda_postgres: PrivatePostgres
    daemon: Daemon
    poison: PoisonMessages
    broker_proxy: DelayingProxy | None
    datasets: dict[str, list[SeededFile]] = field(default_factory=dict)


def build_node(stack: ExitStack, workdir: Path, clock: Clock, broker_delay: float, seed: int) -> SoakNode:
    keys = workdir / "keys"
    keys.mkdir()
    node_keys = crypt4gh_files.make_key_pair(keys, "node", NODE_PASSPHRASE)
    receiver_keys = crypt4gh_files.make_key_pair(keys, "receiver", "receiver-passphrase")

    s3 = InterruptibleS3Server()
    s3.start()
    stack.callback(s3.stop)
    s3_lock = threading.Lock()
    witness = PatientWitness(s3_lock)
    remote = StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA, on_accept=witness)
    remote.start()
    stack.callback(remote.stop)

    sda_postgres = stack.enter_context(PrivatePostgres(workdir / "sda-postgres"))
    dagster_database = f"bpsync_soak_dagster_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dagster_env = create_dagster_database(dagster_database)
    stack.callback(drop_database, dagster_database)
    node = Node(
        root=workdir,
        archive="posix",
        sync="s3",
        node_keys=node_keys,
        receiver_keys=receiver_keys,
        sda_dsn="",
        s3=s3,
        remote=remote,
        dagster_home=make_dagster_home(workdir / "dagster_home"),
        dagster_env=dagster_env,
    )
    witness.node = node
    use_private_sda_database(node, sda_postgres)
    clock.say(f"S3 on {s3.endpoint_url}, remote API on {remote.url}, SDA database on port {sda_postgres.port}")

    broker = stack.enter_context(PrivateRabbitMQ(workdir / "rabbitmq"))
    prefix = node.prefix
    topology = Topology(f"{prefix}-sda", f"{prefix}-mapping_stream", f"{prefix}-errors", broker.connection_parameters())
    topology.declare("stream")
    clock.say(f"private RabbitMQ on port {broker.port} (started in {broker.last_start_seconds:.1f} s)")
    broker_proxy = None
    if broker_delay > 0:
        pacing = Pacing(delay=0.0, gap=0.0, jitter=broker_delay, only_deliveries=True)
        broker_proxy = DelayingProxy(broker.port, pacing, seed=seed).start()
        stack.callback(broker_proxy.stop)
        clock.say(f"the daemon reaches RabbitMQ through a proxy that holds each delivery 0-{broker_delay:g} s")
    node.extra_env = {
        **node.extra_env,
        "BROKER_PORT": str(broker_proxy.port if broker_proxy else broker.port),
        "BROKER_QUEUE": topology.mapping_queue,
        "BROKER_EXCHANGE": topology.exchange,
        "SYNC_SENSOR_STREAMSTART": "first",
    }
    daemon = Daemon(node.environment(), workdir / "daemon.log")
    poison = poison_messages(lambda name: node.dataset_id(f"poison-{name}"))
    return SoakNode(node, witness, s3, s3_lock, broker, topology, sda_postgres, daemon, poison, broker_proxy)


def seed_datasets(soak: SoakNode, datasets: int, files: int, rng: random.Random) -> None:
    for number in range(datasets):
        dataset_id = soak.node.dataset_id(f"{number:04d}")
        plaintexts = [
            (f"d{number:04d}/file-{index}.c4gh", rng.randbytes(rng.randint(1 * KiB, 64 * KiB)))
            for index in range(files)
        ]
        soak.datasets[dataset_id] = soak.node.add_dataset(dataset_id, plaintexts)
        soak.witness.expect(dataset_id, soak.datasets[dataset_id])


# --------------------------------------------------------------------------------------------------
# Publishing, as an upstream SDA service would: confirmed, retried while the broker is away
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message to publish: a dataset's mapping message, or a poison message (`poison` is True)."""

    key: str | bytes
    body: bytes | dict
    correlation_id: str | bytes
    poison: bool = False


class Publisher(threading.Thread):
    def __init__(self, soak: SoakNode, rng: random.Random, window: float, clock: Clock) -> None:
        super().__init__(name="publisher", daemon=True)
        self.soak = soak
        self.clock = clock
        messages = [
            Message(dataset_id, mapping(dataset_id, *(item.accession_id for item in files)), f"soak-{dataset_id}")
            for dataset_id, files in soak.datasets.items()
        ]
        messages += [Message(key, body, key, poison=True) for key, (body, _) in soak.poison.items()]
        self.schedule = burst_schedule(messages, rng, window)
        self.total = len(messages)
        self.published: list[str | bytes] = []
        self.attempts: Counter[str | bytes] = Counter()
        self.uncertain: Counter[str | bytes] = Counter()  # failed after the message was sent: it may be in the stream
        self.stop_event = threading.Event()

    def run(self) -> None:
        for at, burst in self.schedule:
            if self.stop_event.wait(max(0.0, at - self.clock.now())):
                return
            for message in burst:
                self.publish(message)
            poison = sum(message.poison for message in burst)
            self.clock.say(
                f"published a burst of {len(burst)}{f' ({poison} poison)' if poison else ''} "
                f"({len(self.published)}/{self.total})"
            )

    def publish(self, message: Message) -> None:
        while not self.stop_event.is_set():
            self.attempts[message.key] += 1
            try:
                self.soak.topology.publish(message.body, correlation_id=message.correlation_id)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError, pika.exceptions.AMQPConnectionError):
                time.sleep(0.5)  # refused, unroutable while the stream recovers, or never sent: not stored
            except (pika.exceptions.AMQPError, OSError):
                self.uncertain[message.key] += 1  # lost on the way to a confirm: it may be in the stream
                time.sleep(0.5)
            else:
                self.published.append(message.key)
                return

    @property
    def done(self) -> bool:
        return len(self.published) == self.total


def burst_schedule(messages: list[Message], rng: random.Random, window: float) -> list[tuple[float, list[Message]]]:
    """The messages shuffled into bursts of random sizes at random moments of the first `window`
    seconds, the first at 0."""
    remaining = list(messages)
    rng.shuffle(remaining)
    bursts: list[list[Message]] = []
    largest = max(1, len(messages) // 5)
    while remaining:
        size = rng.randint(1, largest)
        bursts.append(remaining[:size])
        remaining = remaining[size:]
    moments = sorted([0.0] + [rng.uniform(0, window) for _ in bursts[1:]])
    return list(zip(moments, bursts, strict=True))


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


class FaultInjector(threading.Thread):
    def __init__(
        self,
        soak: SoakNode,
        rng: random.Random,
        interval: tuple[float, float],
        clock: Clock,
        kinds: tuple[str, ...] = FAULT_KINDS,
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.soak = soak
        self.rng = rng
        self.interval = interval
        self.clock = clock
        self.kinds = kinds
        self.faults: list[Fault] = []
        self.kills: list[Kill] = []
        self.killed_lineages: Counter[str] = Counter()
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._instance: dg.DagsterInstance | None = None

    def run(self) -> None:
        self._instance = self.soak.node.instance()
        try:
            while not self.stop_event.wait(self.rng.uniform(*self.interval)):
                self.inject_one()
        except BaseException as error:  # a fault that cannot be undone ends the soak as a failure
            self.error = error
            self.clock.say(f"FAULT INJECTION FAILED: {type(error).__name__}: {error}")

    def inject_one(self) -> None:
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        for kind in kinds:
            detail = getattr(self, kind)()
            if detail is not None:
                fault = Fault(round(self.clock.now(), 1), kind, detail)
                self.faults.append(fault)
                self.clock.say(f"fault {len(self.faults)}: {kind}: {detail}")
                return

    def counts(self) -> Counter[str]:
        return Counter(fault.kind for fault in self.faults)

    def kill_run_worker(self) -> str | None:
        assert self._instance is not None
        started = self._instance.get_runs(
            dg.RunsFilter(job_name=sync_dataset.name, statuses=[dg.DagsterRunStatus.STARTED])
        )
        candidates = [run for run in started if self.killed_lineages[run.root_run_id or run.run_id] < KILLS_PER_LINEAGE]
        self.rng.shuffle(candidates)
        for run in candidates:
            worker = run_worker(self._instance, run.run_id)
            on_this_host = worker is not None and worker.host in (None, socket.gethostname())
            if worker is None or not on_this_host or not process_alive(worker.pid, worker.reported_at):
                continue
            steps = steps_running(self._instance, run.run_id)
            os.kill(worker.pid, signal.SIGKILL)
            root = run.root_run_id or run.run_id
            self.killed_lineages[root] += 1
            dataset_id = run.tags.get(DATASET_TAG, "?")
            self.kills.append(Kill(round(self.clock.now(), 1), run.run_id, root, dataset_id, worker.pid, steps))
            return f"SIGKILL pid {worker.pid}, run {run.run_id[:8]} of {dataset_id} in {', '.join(steps) or 'no step'}"
        return None

    def s3_outage(self) -> str:
        seconds = self.rng.uniform(1, 5)
        with self.soak.s3_lock:
            self.clock.say(f"S3 stopped for {seconds:.1f} s")
            self.soak.s3.stop()
            try:
                time.sleep(seconds)
            finally:
                self.soak.s3.start()
        return f"S3 down for {seconds:.1f} s"

    def _remote_fault(self, inject: Callable[[int], None], what: str) -> str | None:
        remote = self.soak.node.remote
        if remote.faults_pending or remote.datasets_last_refused:
            # The previous series is not used up, or a dataset it hit has not been accepted since:
            # one run meets at most one series of ≤ 3 in a row, within its 5 attempts.
            return None
        count = self.rng.randint(1, 3)
        inject(count)
        return f"the next {count} requests {what}"

    def remote_500(self) -> str | None:
        return self._remote_fault(lambda count: self.soak.node.remote.fail_next(count, 500), "answered 500")

    def remote_close(self) -> str | None:
        return self._remote_fault(self.soak.node.remote.fail_next_by_closing, "closed without an answer")

    def remote_hang(self) -> str | None:
        seconds = self.rng.uniform(1, 5)
        return self._remote_fault(
            lambda count: self.soak.node.remote.fail_next_by_hanging(count, seconds), f"hang {seconds:.1f} s"
        )

    def broker_restart(self) -> str:
        broker = self.soak.broker
        broker.stop()
        broker.start(queues=[self.soak.topology.mapping_queue])
        return f"RabbitMQ stopped in {broker.last_stop_seconds:.1f} s, started in {broker.last_start_seconds:.1f} s"

    def sda_database_restart(self) -> str:
        began = time.monotonic()
        self.soak.sda_postgres.restart()
        return f"PostgreSQL of the SDA database restarted in {time.monotonic() - began:.1f} s"


def steps_running(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    started, ended = step_events(instance, run_id)
    return [step for step in started if step not in ended]


def step_events(instance: dg.DagsterInstance, run_id: str) -> tuple[list[str], set[str]]:
    """Steps started (in order) and steps that succeeded or failed for good."""
    entries = instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}
    )
    started = [_op(entry) for entry in entries if entry.dagster_event_type == DagsterEventType.STEP_START]
    ended = {_op(entry) for entry in entries if entry.dagster_event_type != DagsterEventType.STEP_START}
    return list(dict.fromkeys(started)), ended


def _op(entry: dg.EventLogEntry) -> str:
    """The op a step event is of, without the `synced_dataset.` graph prefix of its step key."""
    return op_step_key(entry.step_key or "?")


# --------------------------------------------------------------------------------------------------
# Watching and judging
# --------------------------------------------------------------------------------------------------


def sync_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs(dg.RunsFilter(job_name=sync_dataset.name))))


def every_lineage_succeeded(runs: list[dg.DagsterRun]) -> bool:
    """Whether the last run of every root run's lineage (the root and its retries) succeeded."""
    last_of_lineage = {run.root_run_id or run.run_id: run for run in runs}  # runs are oldest first
    return all(run.status == dg.DagsterRunStatus.SUCCESS for run in last_of_lineage.values())


def wait_for_the_end(
    soak: SoakNode, publisher: Publisher, injector: FaultInjector, clock: Clock, timeout: float
) -> str | None:
    """None once every dataset is POSTed and every run has finished and stayed so; else why not."""
    instance = soak.node.instance()
    expected = set(soak.datasets)
    quiet_since: float | None = None
    last_report = 0.0
    while clock.now() < timeout:
        if injector.error is not None:
            return f"fault injection failed: {injector.error}"
        posted = expected & set(soak.witness.posts)
        runs = sync_runs(instance)
        unfinished = [run for run in runs if run.status in UNFINISHED_STATUSES]
        if posted == expected and not injector.stop_event.is_set():
            clock.say("every dataset is POSTed: no more faults")
            injector.stop_event.set()
        if clock.now() - last_report >= 15:
            last_report = clock.now()
            statuses = Counter(run.status.value for run in runs)
            clock.say(
                f"published {len(publisher.published)}/{publisher.total}, POSTed {len(posted)}/{len(expected)}, "
                f"runs {dict(sorted(statuses.items()))}"
            )
        if (
            publisher.done
            and posted == expected
            and not unfinished
            and not injector.is_alive()
            and poison_reported(soak)
        ):
            quiet_since = quiet_since or clock.now()
            if every_lineage_succeeded(runs) or clock.now() - quiet_since >= SETTLE_SECONDS:
                return None
        else:
            quiet_since = None
        time.sleep(2)
    return f"timed out after {timeout:.0f} s"


def poison_reported(soak: SoakNode) -> bool:
    """Whether the error queue holds at least as many info-errors as there are poison messages."""
    try:
        return soak.topology.error_count() >= len(soak.poison)
    except (pika.exceptions.AMQPError, OSError):
        return False


@dataclass
class Summary:
    seed: int
    datasets: int
    files_per_dataset: int
    seconds: float = 0.0
    failure: str | None = None
    synced: int = 0
    not_synced: list[str] = field(default_factory=list)
    messages_lost: list[str] = field(default_factory=list)
    duplicate_runs: dict[str, int] = field(default_factory=dict)
    corrupt_objects: list[str] = field(default_factory=list)
    missing_objects: list[str] = field(default_factory=list)
    unexpected_objects: list[str] = field(default_factory=list)
    partial_objects: list[str] = field(default_factory=list)
    posts_histogram: dict[int, int] = field(default_factory=dict)
    repeat_posts: dict[str, str] = field(default_factory=dict)
    early_posts: list[str] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)
    retry_runs: int = 0
    run_failures: dict[str, int] = field(default_factory=dict)
    op_retries: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    info_errors: dict[str, int] = field(default_factory=dict)
    publishes_retried: int = 0
    publishes_uncertain: int = 0
    broker_delay: float = 0.0
    poison_published: int = 0
    poison_reports: dict[str, int] = field(default_factory=dict)
    poison_problems: list[str] = field(default_factory=list)
    poison_runs: list[str] = field(default_factory=list)

    @property
    def info_errors_about_synced(self) -> int:
        return sum(count for dataset_id, count in self.info_errors.items() if dataset_id not in self.not_synced)

    @property
    def corrupt_or_partial(self) -> int:
        return len(self.corrupt_objects) + len(self.unexpected_objects) + len(self.partial_objects)

    @property
    def passed(self) -> bool:
        return (
            self.failure is None
            and self.synced == self.datasets
            and not self.messages_lost
            and not self.duplicate_runs
            and self.corrupt_or_partial == 0
            and not self.early_posts
            and not self.poison_problems
            and not self.poison_runs
        )


def judge(soak: SoakNode, publisher: Publisher, injector: FaultInjector, summary: Summary) -> None:
    instance = soak.node.instance()
    runs = sync_runs(instance)
    runs_of: dict[str, list[dg.DagsterRun]] = defaultdict(list)
    for run in runs:
        runs_of[run.tags.get(DATASET_TAG, "?")].append(run)

    summary.messages_lost = sorted(dataset_id for dataset_id in soak.datasets if not runs_of.get(dataset_id))
    roots_per_key = Counter(run.tags.get(RUN_KEY_TAG, "no run key") for run in runs if run.parent_run_id is None)
    summary.duplicate_runs = {key: count for key, count in roots_per_key.items() if count > 1}

    in_sync_storage = set(soak.node.visible_sync_names())
    expected_names = {item.path for files in soak.datasets.values() for item in files}
    summary.unexpected_objects = sorted(in_sync_storage - expected_names)
    summary.partial_objects = [name for name in in_sync_storage if name.endswith(PARTIAL_SUFFIX)]
    summary.partial_objects += open_multipart_uploads(soak.node)
    client = soak.s3.client()
    (bucket,) = soak.node.sync_buckets() or [None]
    for dataset_id, files in soak.datasets.items():
        complete = True
        for item in files:
            if item.path not in in_sync_storage:
                summary.missing_objects.append(item.path)
                complete = False
                continue
            data = client.get_object(Bucket=bucket, Key=item.path)["Body"].read()
            try:
                header, body = split_crypt4gh(data)
                good = crypt4gh_files.decrypt(header, body, soak.node.receiver_keys.secret_key) == item.plaintext
            except Exception:
                good = False
            if not good:
                summary.corrupt_objects.append(item.path)
                complete = False
        if complete and soak.witness.posts[dataset_id] >= 1:
            summary.synced += 1
        else:
            summary.not_synced.append(dataset_id)

    summary.posts_histogram = dict(sorted(Counter(soak.witness.posts[d] for d in soak.datasets).items()))
    summary.early_posts = list(soak.witness.problems)
    kills = {kill.run_id: kill for kill in injector.kills}
    for dataset_id in soak.datasets:
        if soak.witness.posts[dataset_id] > 1:
            summary.repeat_posts[dataset_id] = explain_repeat_posts(
                instance, runs_of[dataset_id], kills, soak.witness.posts[dataset_id]
            )

    summary.runs = dict(sorted(Counter(run.status.value for run in runs).items()))
    summary.retry_runs = sum(run.parent_run_id is not None for run in runs)
    failures: Counter[str] = Counter()
    op_retries: Counter[str] = Counter()
    for run in runs:
        if run.status == dg.DagsterRunStatus.FAILURE:
            failures[failure_cause(instance, run.run_id, run.run_id in kills)] += 1
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY):
            op_retries[_op(entry)] += 1
    summary.run_failures = dict(failures)
    summary.op_retries = dict(sorted(op_retries.items()))
    summary.faults = {kind: injector.counts()[kind] for kind in injector.kinds}
    summary.publishes_retried = sum(publisher.attempts.values()) - len(publisher.published)
    try:
        errors = soak.topology.error_messages()
    except (pika.exceptions.AMQPError, OSError) as error:
        summary.info_errors = {f"error queue unreadable: {type(error).__name__}": 1}
        errors = []
    judge_poison(soak, publisher, errors, runs, summary)
    dataset_errors = [body for body, properties in errors if properties.correlation_id not in soak.poison]
    summary.info_errors = summary.info_errors or dict(
        Counter(json.loads(body["original-message"])["dataset_id"] for body in dataset_errors)
    )
    summary.publishes_uncertain = sum(publisher.uncertain.values())


def judge_poison(
    soak: SoakNode,
    publisher: Publisher,
    errors: list[tuple[dict, Any]],
    runs: list[dg.DagsterRun],
    summary: Summary,
) -> None:
    """Every poison message is reported once (more only if its publish was retried after it may have
    been stored), each report names its cause, and no run carries a dataset a poison message names."""
    reports: Counter[str | bytes] = Counter()
    for body, properties in errors:
        if properties.correlation_id in soak.poison:
            reports[properties.correlation_id] += 1
            problem = info_error_problem(soak.poison, properties.correlation_id, body)
            if problem is not None:
                summary.poison_problems.append(problem)
    summary.poison_published = sum(1 for key in publisher.published if key in soak.poison)
    summary.poison_reports = {repr(key): reports[key] for key in soak.poison}
    for key in soak.poison:
        allowed = 1 + publisher.uncertain[key]
        if key in publisher.published and not 1 <= reports[key] <= allowed:
            summary.poison_problems.append(f"{key!r}: {reports[key]} info-errors (expected 1, at most {allowed})")
    forbidden = poison_dataset_ids(soak.poison)
    summary.poison_runs = sorted(
        f"{run.run_id[:8]} ({run.tags.get(DATASET_TAG, '?')[:60]!r})"
        for run in runs
        if run.tags.get(DATASET_TAG) in forbidden
    )


def failure_cause(instance: dg.DagsterInstance, run_id: str, killed_by_soak: bool) -> str:
    entries = instance.all_logs(run_id, of_type={DagsterEventType.RUN_FAILURE, DagsterEventType.ENGINE_EVENT})
    messages = [(entry.dagster_event_type, first_line(entry)) for entry in entries]
    failure_at = max(
        (index for index, (kind, _) in enumerate(messages) if kind == DagsterEventType.RUN_FAILURE), default=-1
    )
    message = messages[failure_at][1] if failure_at >= 0 else ""
    engine_before = messages[failure_at - 1][1] if failure_at >= 1 else ""
    if "is gone" in message and message.startswith("Detected run worker status"):
        return "worker killed by the soak, failed by run monitoring" if killed_by_soak else f"monitoring: {message}"
    if "is gone" in message:
        return "worker killed by the soak, failed by dead_run_reaper" if killed_by_soak else f"reaper: {message}"
    if killed_by_soak and "signal 9" in engine_before:
        return "worker killed by the soak, failed by the code server that launched it"
    if killed_by_soak:
        return f"worker killed by the soak, then: {message} ({engine_before})"
    step_failures = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
    if step_failures and step_failures[-1].dagster_event:
        return f"step {step_failures[-1].step_key} failed: {failure_reason(step_failures[-1].dagster_event)[:200]}"
    return f"{message} ({engine_before})"


def first_line(entry: Any) -> str:
    text = entry.dagster_event.message if entry.dagster_event else entry.user_message
    return (text or "").strip().split("\n")[0][:200]


def explain_repeat_posts(
    instance: dg.DagsterInstance, runs: list[dg.DagsterRun], kills: dict[str, Kill], posts: int
) -> str:
    """Why a dataset was POSTed more than once, from its runs' history."""
    keys = {run.tags.get(RUN_KEY_TAG) for run in runs if run.parent_run_id is None}
    reasons = []
    if len(keys) > 1:
        reasons.append(f"{len(keys)} mapping messages in the stream (a publish retried across a broker restart)")
    for run in runs:
        started, ended = step_events(instance, run.run_id)
        if "post_manifest" in started and "post_manifest" not in ended:
            child = next((other.run_id[:8] for other in runs if other.parent_run_id == run.run_id), "none")
            how = "killed by the soak" if run.run_id in kills else f"ended {run.status.value}"
            reasons.append(
                f"run {run.run_id[:8]} (retry {run.tags.get('dagster/retry_number', '0')}) was {how} in "
                f"post_manifest after the remote accepted its POST, before the step's success; "
                f"its re-execution {child} POSTed again"
            )
    if not reasons:
        history = ", ".join(f"{run.run_id[:8]} {run.status.value}" for run in runs)
        reasons.append(f"UNEXPLAINED: runs {history}")
    return f"{posts} POSTs: " + "; ".join(reasons)


def print_summary(summary: Summary) -> None:
    def listed(items: list[str] | dict[str, Any], limit: int = 10) -> str:
        shown = list(items)[:limit]
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return f" ({', '.join(shown)}{more})" if shown else ""

    lines = [
        f"soak summary: seed {summary.seed}, {summary.datasets} datasets × {summary.files_per_dataset} files, "
        f"{summary.seconds:.0f} s",
        f"  datasets synced: {summary.synced}/{summary.datasets}{listed(summary.not_synced)}",
        f"  messages lost: {len(summary.messages_lost)}{listed(summary.messages_lost)}",
        f"  duplicate runs: {len(summary.duplicate_runs)}{listed(summary.duplicate_runs)}",
        f"  corrupt or partial objects: {summary.corrupt_or_partial} (corrupt {len(summary.corrupt_objects)}, "
        f"unexpected {len(summary.unexpected_objects)}, partial or open uploads {len(summary.partial_objects)}; "
        f"missing {len(summary.missing_objects)})"
        + listed(summary.corrupt_objects + summary.unexpected_objects + summary.partial_objects),
        "  POSTs per dataset: " + ", ".join(f"{posts}× {count}" for posts, count in summary.posts_histogram.items()),
        f"  repeat POSTs: {sum(max(0, posts - 1) * count for posts, count in summary.posts_histogram.items())}",
        *[f"    {dataset_id}: {why}" for dataset_id, why in summary.repeat_posts.items()],
        f"  early POSTs: {len(summary.early_posts)}",
        *[f"    {problem}" for problem in summary.early_posts[:20]],
        f"  runs: {sum(summary.runs.values())} {summary.runs}; retry runs: {summary.retry_runs}; "
        f"failed: {sum(summary.run_failures.values())}",
        *[f"    {count}× {cause}" for cause, count in summary.run_failures.items()],
        f"  op retries: {summary.op_retries}",
        f"  faults injected: {sum(summary.faults.values())} {summary.faults}",
        f"  info-errors on the error queue: {sum(summary.info_errors.values())}"
        f" (about datasets synced in the end: {summary.info_errors_about_synced})",
        f"  publishes retried: {summary.publishes_retried} (of which possibly delivered: {summary.publishes_uncertain})",
        f"  poison messages: {summary.poison_published} published, info-errors {summary.poison_reports}, "
        f"runs {len(summary.poison_runs)}{listed(summary.poison_runs)}",
        *[f"    {problem}" for problem in summary.poison_problems],
        f"  deliveries to the daemon held: 0-{summary.broker_delay:g} s each",
    ]
    if summary.failure:
        lines.append(f"  FAILURE: {summary.failure}")
    lines.append(f"soak result: {'PASS' if summary.passed else 'FAIL'}")
    print("\n".join(lines), flush=True)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--files", type=int, default=5, help="files per dataset")
    parser.add_argument("--seed", type=int, help="replay a printed seed (default: random)")
    parser.add_argument("--json", type=Path, help="write the summary, every fault and kill here")
    parser.add_argument("--publish-window", type=float, help="seconds over which messages are published (≤ 60)")
    parser.add_argument(
        "--fault-interval", type=float, nargs=2, default=(4.0, 12.0), metavar=("MIN", "MAX"), help="seconds"
    )
    parser.add_argument("--faults", nargs="+", choices=FAULT_KINDS, default=list(FAULT_KINDS))
    parser.add_argument(
        "--broker-delay",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="hold each delivery RabbitMQ sends the daemon a random 0 to SECONDS (0: no proxy)",
    )
    parser.add_argument("--timeout", type=float, help="seconds (default: 240 + 8 per dataset)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (kept anyway on failure)")
    args = parser.parse_args(argv)
    for noisy in ("werkzeug", "bpsync_dagster_tests.support.remote_api", "pika"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    window = args.publish_window if args.publish_window is not None else min(60.0, 2.5 * args.datasets)
    timeout = args.timeout or 240 + 8 * args.datasets
    clock = Clock()
    workdir = Path(tempfile.mkdtemp(prefix="bpsync-soak-"))
    command = " ".join(["python soak/run.py", *(sys.argv[1:] if argv is None else argv)])
    clock.say(f"{command}; seed {seed} (replay with --seed {seed}); working in {workdir}")
    summary = Summary(seed, args.datasets, args.files, broker_delay=args.broker_delay)
    injector: FaultInjector | None = None
    try:
        with ExitStack() as stack:
            soak = build_node(stack, workdir, clock, args.broker_delay, seed + 3)
            seed_datasets(soak, args.datasets, args.files, random.Random(seed))
            clock.say(f"seeded {args.datasets} datasets × {args.files} files")
            soak.node.instance()  # creates the instance's tables before the daemon and the threads race to
            soak.daemon.start()
            stack.callback(soak.daemon.kill)
            publisher = Publisher(soak, random.Random(seed + 1), window, clock)
            injector = FaultInjector(
                soak, random.Random(seed + 2), tuple(args.fault_interval), clock, tuple(args.faults)
            )
            publisher.start()
            injector.start()
            summary.failure = wait_for_the_end(soak, publisher, injector, clock, timeout)
            injector.stop_event.set()
            publisher.stop_event.set()
            injector.join(timeout=120)
            soak.s3.start()
            summary.seconds = clock.now()
            judge(soak, publisher, injector, summary)
            soak.daemon.kill()
            print_summary(summary)
    finally:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "command": command,
                "summary": {**asdict(summary), "passed": summary.passed},
                "faults": [asdict(fault) for fault in injector.faults] if injector else [],
                "kills": [asdict(kill) for kill in injector.kills] if injector else [],
                "workdir": str(workdir),
            }
            args.json.write_text(json.dumps(record, indent=1, default=str))
        if summary.passed and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"soak: logs kept in {workdir} (daemon.log, rabbitmq/log, sda-postgres/postgres.log)")
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
