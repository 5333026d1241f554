"""Helpers of the fault tests: `bpsync` with pinned back-off or as a process to kill, a witness of
the manifest POSTs, leftovers of interrupted writes, and a node whose SDA database is private."""

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from typing import Any

import psycopg2

from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX
from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.environment import (
    FILE_SYNC_SCHEMA,
    PROJECT_ROOT,
    REMOTE_PASSWORD,
    REMOTE_USER,
    SDA_DB_PASSWORD,
    SDA_DB_USER,
    Node,
    SeededFile,
)
from bpsync_dagster_tests.support.pinned_backoff_cli import JITTER_VARIABLE
from bpsync_dagster_tests.support.private_postgres import PrivatePostgres
from bpsync_dagster_tests.support.processes import read_line
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi

PRIVATE_SDA_DB = "sda"


def pinned_bpsync_command(node: Node, jitter: float, remote_read_timeout: int | None) -> tuple[list[str], dict]:
    search_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {**node.environment(), JITTER_VARIABLE: str(jitter), "PYTHONPATH": search_path}
    if remote_read_timeout is not None:
        environment["SYNC_REMOTE_READTIMEOUT"] = str(remote_read_timeout)
    return [sys.executable, "-m", "bpsync_dagster_tests.support.pinned_backoff_cli"], environment


def bpsync_pinned(
    node: Node, *arguments: str, jitter: float, remote_read_timeout: int | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`bpsync ARGUMENTS` with every retry waiting `jitter` times its policy's cap (see pinned_backoff_cli)."""
    command, environment = pinned_bpsync_command(node, jitter, remote_read_timeout)
    return subprocess.run(
        [*command, *arguments], cwd=node.root, env=environment, capture_output=True, text=True, timeout=timeout
    )


def start_bpsync(node: Node, *arguments: str, jitter: float | None = None) -> subprocess.Popen[str]:
    """`bpsync ARGUMENTS` as a running process, stdout piped line by line (stderr too, merged)."""
    if jitter is None:
        command, environment = [sys.executable, "-m", "bpsync_dagster.cli"], node.environment()
    else:
        command, environment = pinned_bpsync_command(node, jitter, None)
    return subprocess.Popen(
        [*command, *arguments],
        cwd=node.root,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    """Lines of `process` up to and including the first that contains `marker`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = read_line(process.stdout, remaining)
        except AssertionError:
            break
        if not line:
            raise AssertionError(f"bpsync ended before printing {marker!r}:\n{''.join(lines)}")
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"bpsync did not print {marker!r} within {timeout} s:\n{''.join(lines)}")


def failure_line(stderr: str) -> str:
    """The CLI's one-line reason for a failed sync."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("bpsync: ") and "sync failed" in line]
    return line


def run_id_of(output: str) -> str:
    return output.split(" run ", 1)[1].split()[0]


class ManifestWitness:
    """`on_accept` of a stand-in remote: when a manifest is accepted, every file it names must
    already be in sync storage and decrypt to its plaintext; what is not is kept in `problems`."""

    def __init__(self) -> None:
        self.node: Node | None = None
        self.remote: StandInRemoteApi | None = None
        self.expected: dict[str, list[SeededFile]] = {}
        self.posts: Counter[str] = Counter()
        self.problems: list[str] = []

    def expect(self, dataset_id: str, files: list[SeededFile]) -> None:
        self.expected[dataset_id] = files

    def __call__(self, manifest: dict[str, Any]) -> None:
        dataset_id = manifest["dataset_id"]
        self.posts[dataset_id] += 1
        files = self.expected.get(dataset_id, [])
        named = sorted(entry["file_id"] for entry in manifest["dataset_files"])
        if named != sorted(item.accession_id for item in files):
            self.problems.append(f"{dataset_id}: the manifest names {named}")
        assert self.node is not None
        for item in files:
            try:
                decrypted = self.node.decrypt_synced(item.path)
            except Exception as error:  # a missing or truncated object, when the POST arrives
                self.problems.append(f"{dataset_id}: {item.path} at POST time: {type(error).__name__}: {error}")
                continue
            if decrypted != item.plaintext:
                self.problems.append(f"{dataset_id}: {item.path} at POST time does not decrypt to its plaintext")


def witnessed_remote(node: Node) -> tuple[StandInRemoteApi, ManifestWitness]:
    """Replace the node's remote by a started stand-in whose accepted POSTs a `ManifestWitness` checks."""
    witness = ManifestWitness()
    witness.node = node
    remote = StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA, on_accept=witness)
    remote.start()
    node.remote = witness.remote = remote
    return remote, witness


def partial_files(node: Node) -> list[str]:
    """POSIX temporary files (`.<name>.<random>.bpsync-partial`) left in sync storage."""
    return sorted(
        str(path.relative_to(node.sync_dir)) for path in node.sync_dir.rglob(f".*{PARTIAL_SUFFIX}") if path.is_file()
    )


def open_multipart_uploads(node: Node) -> list[str]:
    """S3 multipart uploads neither completed nor aborted, in the node's sync buckets."""
    client = node.s3.client()
    return sorted(
        f"{bucket}/{upload['Key']} ({upload['UploadId'][:12]})"
        for bucket in node.sync_buckets()
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    )


def leftovers(node: Node) -> list[str]:
    return partial_files(node) if node.sync == "posix" else open_multipart_uploads(node)


def use_private_sda_database(node: Node, database: PrivatePostgres) -> None:
    """Make `database` (running) the node's SDA database: schema 23, a login role with the SDA's sync grants."""
    database.execute(f"CREATE DATABASE {PRIVATE_SDA_DB}")
    database.execute(sda_database.sda_sync_login_role(SDA_DB_USER, SDA_DB_PASSWORD))
    dsn = database.dsn(PRIVATE_SDA_DB)
    with closing(psycopg2.connect(dsn)) as connection, connection, connection.cursor() as cursor:
        cursor.execute(sda_database.SDA_DDL)
        cursor.execute("INSERT INTO sda.dbschema_version (version, description) VALUES (23, 'fault tests')")
        cursor.execute(sda_database.sda_sync_grants("sync", "base"))
    node.sda_dsn = dsn
    node.extra_env = {**node.extra_env, "DB_PORT": str(database.port), "DB_DATABASE": PRIVATE_SDA_DB}


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.02) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def assert_no_open_multipart_uploads(node: Node) -> None:
    uploads = open_multipart_uploads(node)
    if uploads:
        raise AssertionError(f"multipart uploads left in sync storage: {uploads}")
