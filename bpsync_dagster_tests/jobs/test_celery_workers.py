"""One dataset over two machines: `sync_dataset` with the Celery executor on the real RabbitMQ (a
vhost of its own), a Dagster instance on Postgres, S3 for archive, sync storage and step outputs, and
two `celery` workers started as separate processes, each in a working directory and with a
`DAGSTER_HOME` of its own. Both copy; a worker killed (SIGKILL) in the middle of a batch hands the
batch back to the broker and the other worker copies it; every object decrypts."""

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, EventLogEntry, RunsFilter

from bpsync_dagster.jobs.executors import (
    BROKER_VARIABLE,
    EXECUTOR_VARIABLE,
    STEP_STORAGE_ENDPOINT_VARIABLE,
    STEP_STORAGE_VARIABLE,
)
from bpsync_dagster.jobs.sync_dataset import is_copy_step, op_step_key
from bpsync_dagster_tests.support.environment import ARCHIVE_BUCKET, SECRETS, Node, make_dagster_home
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server
from bpsync_dagster_tests.support.processes import ServiceProcess

MIB = 1024 * 1024
FILES = 16
BROKER_USER = "bpsync_test_celery"
BROKER_PASSWORD = "celery-broker-secret-7d2"
WORKERS = ("w1", "w2")


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], capture_output=True, text=True, timeout=60).check_returncode()


@pytest.fixture
def broker_url() -> Iterator[str]:
    """A vhost of its own on the shared RabbitMQ, for a user that may do anything there only."""
    vhost = f"bpsync_test_celery_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    result = subprocess.run(["rabbitmqctl", "-q", "add_user", BROKER_USER, BROKER_PASSWORD], capture_output=True)
    if result.returncode != 0:
        rabbitmqctl("change_password", BROKER_USER, BROKER_PASSWORD)
    rabbitmqctl("set_permissions", "-p", vhost, BROKER_USER, ".*", ".*", ".*")
    yield f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@127.0.0.1:5672/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def s3_server() -> Iterator[InterruptibleS3Server]:
    """The node's S3 (archive, sync storage, step outputs), whose part uploads the test can hold."""
    server = InterruptibleS3Server()
    server.start()
    server.client().create_bucket(Bucket=ARCHIVE_BUCKET)
    yield server
    server.stop()


def assert_no_broker_password(text: str, where: str) -> None:
    assert BROKER_PASSWORD not in text, f"{where} shows the broker's password"
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret of the test configuration"


class Worker:
    """A Celery worker in a directory of its own (its log, its config file copy, its DAGSTER_HOME)."""

    def __init__(self, name: str, root: Path, environment: dict[str, str], config_file: Path) -> None:
        self.name = name
        self.directory = root / name
        self.directory.mkdir()
        shutil.copy(config_file, self.directory / "config.yaml")
        home = make_dagster_home(self.directory / "dagster_home")
        environment = {**environment, "CONFIG_FILE": str(self.directory / "config.yaml"), "DAGSTER_HOME": str(home)}
        arguments = ["-A", "bpsync_dagster.jobs.celery_worker", "worker", "--concurrency", "1"]
        arguments += ["--prefetch-multiplier", "1", "-Q", "dagster", "-n", f"{name}@%h", "--loglevel", "INFO"]
        self.process = ServiceProcess("celery", arguments, environment, self.directory / "worker.log")

    def start(self) -> None:
        self.process.start()

    def wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.process.log():
            assert self.process.exit_status() is None, f"worker {self.name} exited:\n{self.process.log()[-3000:]}"
            assert time.monotonic() < deadline, f"worker {self.name} not ready in {timeout} s:\n{self.process.log()}"
            time.sleep(0.2)


class RunEvents:
    """The copy steps of the run as its event log tells them: which worker ran which step, and when."""

    def __init__(self, instance: DagsterInstance, dataset_id: str) -> None:
        self._instance = instance
        self._dataset_id = dataset_id

    def entries(self) -> list[EventLogEntry]:
        runs = self._instance.get_runs(RunsFilter(tags={"dataset_id": self._dataset_id}))
        return self._instance.all_logs(runs[0].run_id) if runs else []

    def executions(self) -> list[tuple[float, str, str]]:
        """(time, step key, worker name) of every copy step a Celery worker began."""
        executions = []
        for entry in self.entries():
            event = entry.dagster_event
            if event is None or event.event_type != DagsterEventType.ENGINE_EVENT or not event.step_key:
                continue
            worker = event.engine_event_data.metadata.get("Celery worker")
            if worker is not None and is_copy_step(event.step_key):
                executions.append((entry.timestamp, op_step_key(event.step_key), str(worker.value).split("@")[0]))
        return executions

    def succeeded(self) -> set[str]:
        return {
            op_step_key(entry.dagster_event.step_key)
            for entry in self.entries()
            if entry.dagster_event is not None and entry.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
        }


def wait_for(condition: Callable[[], object], what: str, timeout: float, sync: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert sync.poll() is None, f"bpsync sync ended before {what}: {sync.communicate()}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_two_celery_workers_copy_one_dataset_and_a_killed_worker_is_recovered(
    make_node, s3_server: InterruptibleS3Server, broker_url: str, tmp_path: Path
) -> None:
    node: Node = make_node("s3", "s3")
    step_bucket = f"{node.prefix}-steps"
    s3_server.client().create_bucket(Bucket=step_bucket)
    node.extra_env = {
        EXECUTOR_VARIABLE: "celery",
        BROKER_VARIABLE: broker_url,
        STEP_STORAGE_VARIABLE: f"s3://{step_bucket}/runs",
        STEP_STORAGE_ENDPOINT_VARIABLE: s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    dataset_id = node.dataset_id("celery")
    # 6 MiB each: more than the 5 MB chunk, so every object is a multipart upload the test can hold.
    files = node.add_dataset(dataset_id, [(f"f{index:02d}.c4gh", bytes([index]) * (6 * MIB)) for index in range(FILES)])
    environment = node.environment()
    workers = {name: Worker(name, tmp_path, environment, node.config_file) for name in WORKERS}
    for worker in workers.values():
        worker.start()
    sync = None
    try:
        for worker in workers.values():
            worker.wait_until_ready()
        arguments = [*node.sync_arguments(dataset_id), "--parallel-files", "1", "--max-batch-files", "2"]
        sync = subprocess.Popen(
            [sys.executable, "-m", "bpsync_dagster.cli", *arguments],
            cwd=tmp_path,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        events = RunEvents(node.instance(), dataset_id)

        def each_worker_finished_a_batch() -> bool:
            done = events.succeeded()
            return {worker for _, step, worker in events.executions() if step in done} == set(WORKERS)

        wait_for(each_worker_finished_a_batch, "batch finished by each worker", 120, sync)
        gate = s3_server.hold_upload_parts()

        def w1_batch_held() -> str | None:
            """The copy step w1 is in, once part uploads wait at the gate: it cannot finish now."""
            begun = [step for _, step, worker in events.executions() if worker == "w1"]
            if not begun or begun[-1] in events.succeeded() or gate.held == 0:
                return None
            time.sleep(2)  # a batch that sent its last part before the gate closed ends meanwhile
            return begun[-1] if begun[-1] not in events.succeeded() and w1_began() == begun else None

        def w1_began() -> list[str]:
            return [step for _, step, worker in events.executions() if worker == "w1"]

        wait_for(w1_batch_held, "copy step of w1 waiting at the held part uploads", 60, sync)
        killed_step = w1_began()[-1]
        workers["w1"].process.kill()
        gate.open()
        stdout, stderr = sync.communicate(timeout=150)
    finally:
        if sync is not None and sync.poll() is None:
            sync.kill()
        for worker in workers.values():
            worker.process.stop()

    assert sync.returncode == 0, stdout + stderr
    assert "Warning" not in stderr, stderr
    assert f"dataset {dataset_id} synced: " in stdout
    executions = events.executions()
    succeeded = events.succeeded()
    assert {step for _, step, _ in executions} == {f"copy_files[{index}]" for index in range(FILES // 2)}
    assert {worker for _, step, worker in executions if step in succeeded} == set(WORKERS)
    assert [worker for _, step, worker in executions if step == killed_step] == ["w1", "w2"], executions
    assert killed_step in succeeded
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert [len(manifest["dataset_files"]) for manifest in node.remote.received] == [FILES]
    assert s3_server.client().list_objects_v2(Bucket=step_bucket, Prefix="runs/").get("KeyCount", 0) > 0
    run = node.instance().get_runs(RunsFilter(tags={"dataset_id": dataset_id}))[0]
    assert_no_broker_password(stdout + stderr, "bpsync sync")
    assert_no_broker_password(str(run.run_config) + str(run.tags), "the run config")
    assert_no_broker_password("\n".join(entry.message for entry in events.entries()), "the run's event log")
    for worker in workers.values():
        assert_no_broker_password(worker.process.log(), f"the log of worker {worker.name}")
