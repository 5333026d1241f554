#!/usr/bin/env python3
"""Benchmarks of `bpsync sync` side by side with `cp` and `rclone copy` (issue 5).

    python bench/run.py            # the full benchmark (tens of GiB written; see docs/benchmarks.md)
    python bench/run.py --quick    # a tiny version that runs in seconds, for CI

It builds everything it measures on its own: crypt4gh keys, encrypted test files in a POSIX archive
and in an S3 archive bucket, an SDA database and a Dagster database of its own on the local
PostgreSQL (127.0.0.1:5432, dropped at the end), the S3 servers chosen with `--s3` (moto, in a
separate process so that it does not share the GIL with the sampler, and Ceph's RADOS Gateway, a
single-node cluster whose OSD keeps its objects in memory, so its datasets are smaller), and the
stand-in remote sync API. Every S3 figure, rclone's on the same endpoint, names its server. Every `bpsync sync`
is the real command in a fresh process, as `bpsync_dagster_tests.support.environment.Node.bpsync`
runs it; its wall time and the summed RSS of its whole process tree (sampled every 50 ms in /proc)
are recorded, and its run's events are read back from the Dagster instance.

Each figure is the median of `--repeat` runs (the tools take turns within each repetition) and is
printed with its ratio to a baseline measured in the same invocation. `--json PATH` writes every
raw measurement; `bench/chart.py` draws the chart of docs/benchmarks.md from it.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import daemon_runs  # noqa: E402  (a script of this folder, as this one)
import results_table  # noqa: E402

KiB, MiB, GiB = 1024, 1024**2, 1024**3
SAMPLE_SECONDS = 0.05
S3_SERVERS = ("moto", "radosgw")
RADOSGW_BYTES = 10 * GiB  # the OSD's capacity: a limit, what it holds takes memory
RCLONE_BUCKET = "bench-rclone"


# --------------------------------------------------------------------------------------------------
# The moto S3 server in a process of its own (`run.py --serve-s3`)
# --------------------------------------------------------------------------------------------------


def serve_s3() -> None:
    """Start the tests' moto server, print its port, serve until stdin closes."""
    from bpsync_dagster_tests.support.s3_server import S3Server

    server = S3Server()
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


def _subprocess_s3_server_class():
    from bpsync_dagster_tests.support.s3_server import S3Server

    class SubprocessS3Server(S3Server):
        """The tests' `S3Server`, but moto runs in a child process."""

        def __init__(self) -> None:
            super().__init__()
            self._process: subprocess.Popen[str] | None = None

        def start(self) -> None:
            self._process = subprocess.Popen(
                [sys.executable, __file__, "--serve-s3"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._port = int(self._process.stdout.readline())

        def stop(self) -> None:
            if self._process is not None:
                self._process.stdin.close()
                try:
                    self._process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
                self._process = None

        @property
        def pid(self) -> int:
            return self._process.pid

    return SubprocessS3Server


# --------------------------------------------------------------------------------------------------
# Measuring a command: wall time and the peak of the summed RSS of its process tree
# --------------------------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
        except OSError:
            continue
    return found


def _tree_rss(root: int) -> int:
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
        stack += _children(pid)
    return total


class TreeSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, _tree_rss(self.pid))
            if self._stop_event.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


@dataclass
class Measured:
    seconds: float
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str
    started: float  # time.time() at launch, to compare with Dagster event timestamps
    ended: float


def measure(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    started_wall = time.time()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    result = Measured(seconds, peak, process.returncode, stdout, stderr, started_wall, time.time())
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return result


def shell(script: str, env: dict[str, str] | None = None) -> Measured:
    return measure(["bash", "-c", f"set -euo pipefail; {script}"], env=env)


# --------------------------------------------------------------------------------------------------
# Test data: encrypted bodies on disk (streamed, so 4 GiB files never sit in memory)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    archive_name: str  # path under the archive directory, and key in the archive bucket
    header: bytes
    size: int
    plain_sha256: str
    body_sha256: str


def write_encrypted_body(directory: Path, name: str, plain_size: int, public_key: bytes) -> Body:
    """Encrypt `plain_size` bytes for `public_key` as crypt4gh, body to `directory/name`."""
    from crypt4gh import SEGMENT_SIZE
    from crypt4gh import header as c4gh_header
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from bpsync_dagster_tests.support.crypt4gh_files import CHACHA20_POLY1305

    session_key, writer_key = os.urandom(32), os.urandom(32)
    packet = c4gh_header.make_packet_data_enc(CHACHA20_POLY1305, session_key)
    header = c4gh_header.serialize(c4gh_header.encrypt(packet, [(CHACHA20_POLY1305, writer_key, public_key)]))
    cipher = ChaCha20Poly1305(session_key)
    block = memoryview(os.urandom(16 * SEGMENT_SIZE))  # the plaintext repeats; the ciphertext does not
    plain_digest, body_digest = hashlib.sha256(), hashlib.sha256()
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    size, remaining, offset = 0, plain_size, 0
    with path.open("wb") as out:
        while remaining > 0:
            length = min(SEGMENT_SIZE, remaining)
            segment = block[offset : offset + length]
            offset = (offset + length) % len(block)
            nonce = os.urandom(12)
            encrypted = nonce + cipher.encrypt(nonce, segment, None)
            plain_digest.update(segment)
            body_digest.update(encrypted)
            out.write(encrypted)
            size += len(encrypted)
            remaining -= length
    return Body(name, header, size, plain_digest.hexdigest(), body_digest.hexdigest())


def record_dataset(
    sda_dsn: str, dataset_id: str, accessions: list[str], bodies: list[Body], directory: str, location: str
) -> None:
    """Record the archived bodies as the dataset's files in the SDA database, submitted under `directory`."""
    from bpsync_dagster_tests.support import sda_database
    from bpsync_dagster_tests.support.environment import SUBMITTER

    for index, (accession, body) in enumerate(zip(accessions, bodies, strict=True)):
        sda_database.insert_file(
            sda_dsn,
            sda_database.SdaFile(
                stable_id=accession,
                submission_user=SUBMITTER,
                submission_file_path=f"{directory}/file{index:04d}.c4gh",
                archive_location=location,
                archive_file_path=body.archive_name,
                archive_file_size=body.size,
                header_hex=body.header.hex(),
                unencrypted_sha256=body.plain_sha256,
                archived_sha256=body.body_sha256,
            ),
        )
    sda_database.map_dataset(sda_dsn, dataset_id, accessions)


@dataclass
class Dataset:
    name: str  # e.g. "multi", "small"
    files: int
    plain_size: int
    bodies: list[Body] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.files}×{_size_label(self.plain_size)}"

    @property
    def body_dir(self) -> str:
        return f"bench/{self.name}"

    def bytes(self) -> int:
        return sum(body.size for body in self.bodies)

    def dataset_id(self, archive: str) -> str:
        """`archive` is `posix` or the name of the S3 server whose archive bucket holds the bodies."""
        return f"SYNC-BENCH-{self.name.upper()}-{archive.upper()}"

    def accession_ids(self, archive: str) -> list[str]:
        """The files' accession IDs, which `bpsync sync` names as a mapping message does."""
        return [f"{self.dataset_id(archive)}-F{index:04d}" for index in range(len(self.bodies))]


def _size_label(size: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


class Bench:
    def __init__(self, workdir: Path, quick: bool, s3_servers: tuple[str, ...]) -> None:
        self.workdir = workdir
        self.quick = quick
        self.s3_names = s3_servers
        self.stack = ExitStack()
        self.profile_dir: Path | None = None
        self.results: list[dict[str, object]] = []  # raw measurements
        self.rows: list[dict[str, object]] = []  # the table

    # ---- set-up -----------------------------------------------------------------------------------

    def __enter__(self) -> "Bench":
        self.stack.__enter__()
        try:
            self._set_up()
        except BaseException:
            self.stack.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stack.__exit__(*exc_info)

    def _set_up(self) -> None:
        from bpsync_dagster_tests.support import crypt4gh_files
        from bpsync_dagster_tests.support.environment import (
            ARCHIVE_BUCKET,
            FILE_SYNC_SCHEMA,
            NODE_PASSPHRASE,
            REMOTE_PASSWORD,
            REMOTE_USER,
            create_dagster_database,
            create_sda_database,
            drop_database,
            make_dagster_home,
        )
        from bpsync_dagster_tests.support.remote_api import StandInRemoteApi

        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.sda_db = f"bpsync_bench_sda_{tag}"
        self.dagster_db = f"bpsync_bench_dagster_{tag}"
        keys_dir = self.workdir / "keys"
        keys_dir.mkdir(parents=True)
        self.node_keys = crypt4gh_files.make_key_pair(keys_dir, "node", NODE_PASSPHRASE)
        self.receiver_keys = crypt4gh_files.make_key_pair(keys_dir, "receiver", "receiver-passphrase")

        self.sda_dsn = create_sda_database(self.sda_db)
        self.stack.callback(drop_database, self.sda_db)
        dagster_env = create_dagster_database(self.dagster_db)
        self.stack.callback(drop_database, self.dagster_db)
        dagster_home = make_dagster_home(self.workdir / "dagster_home")

        self.servers = {name: self._start_s3(name) for name in self.s3_names}
        for server in self.servers.values():
            server.client().create_bucket(Bucket=ARCHIVE_BUCKET)
            server.client().create_bucket(Bucket=RCLONE_BUCKET)
        self.archive_bucket = ARCHIVE_BUCKET

        self.remote = StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA)
        self.remote.start()
        self.stack.callback(self.remote.stop)

        def node(archive: str, sync: str, s3) -> daemon_runs.BenchNode:
            return daemon_runs.BenchNode(
                root=self.workdir / "node",
                archive=archive,
                sync=sync,
                node_keys=self.node_keys,
                receiver_keys=self.receiver_keys,
                sda_dsn=self.sda_dsn,
                s3=s3,
                remote=self.remote,
                dagster_home=dagster_home,
                dagster_env=dagster_env,
                # The shipped default part size (the tests use 5MB to exercise multipart uploads).
                sync_s3_options={"chunk_size": "50MB"},
                sda_database_name=self.sda_db,
                prefix=f"b{uuid.uuid4().hex[:8]}",
            )

        # "P→P", and "P→S3 on moto", "S3→S3 on radosgw" and so on.
        self.nodes = {"P→P": node("posix", "posix", next(iter(self.servers.values())))}
        for name, server in self.servers.items():
            self.nodes[on("P→S3", name)] = node("posix", "s3", server)
            self.nodes[on("S3→S3", name)] = node("s3", "s3", server)
        self.instance = self.nodes["P→P"].instance()
        self.stack.callback(self.instance.dispose)
        # Fill the bytecode cache of the benchmark's processes (see `python_env`).
        measure([sys.executable, "-m", "bpsync_dagster.cli", "--help"], env=self.python_env(self.nodes["P→P"]))

        # rclone fails on an http endpoint when AWS_CA_BUNDLE is set (its transport takes no CA).
        self.rclone_env = {key: value for key, value in os.environ.items() if key != "AWS_CA_BUNDLE"}
        self.rclone_env["RCLONE_CONFIG"] = str(self.workdir / "rclone.conf")
        (self.workdir / "rclone.conf").write_text("")
        from bpsync_dagster_tests.support.s3_server import REGION

        # Two remote names per endpoint (SRCMOTO and DSTMOTO, ...), so S3→S3 is a download and an
        # upload (as for bpsync), not a server-side copy.
        for server_name, server in self.servers.items():
            for name in (f"SRC{server_name.upper()}", f"DST{server_name.upper()}"):
                self.rclone_env.update(
                    {
                        f"RCLONE_CONFIG_{name}_TYPE": "s3",
                        f"RCLONE_CONFIG_{name}_PROVIDER": "Ceph" if server_name == "radosgw" else "Other",
                        f"RCLONE_CONFIG_{name}_ENV_AUTH": "false",
                        f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": server.access_key,
                        f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": server.secret_key,
                        f"RCLONE_CONFIG_{name}_ENDPOINT": server.endpoint_url,
                        f"RCLONE_CONFIG_{name}_REGION": REGION,
                        f"RCLONE_CONFIG_{name}_FORCE_PATH_STYLE": "true",
                    }
                )

    def _start_s3(self, name: str):
        """A started S3 server (`moto` or `radosgw`), stopped when the benchmark ends."""
        if name == "moto":
            server = _subprocess_s3_server_class()()
        else:
            from bpsync_dagster_tests.support.radosgw import RadosGateway

            server = RadosGateway(self.workdir / "radosgw", device_bytes=RADOSGW_BYTES)
        server.start()
        self.stack.callback(server.stop)
        return server

    @property
    def archive_dir(self) -> Path:
        return self.nodes["P→P"].archive_dir

    @property
    def sync_dir(self) -> Path:
        return self.nodes["P→P"].sync_dir

    # ---- data -------------------------------------------------------------------------------------

    def make_dataset(self, name: str, files: int, plain_size: int, archives: tuple[str, ...] = ("posix",)) -> Dataset:
        from bpsync_dagster_tests.support import crypt4gh_files

        dataset = Dataset(name, files, plain_size)
        for _ in range(files):
            if plain_size <= 64 * KiB:
                plaintext = os.urandom(plain_size)
                header, body = crypt4gh_files.encrypt(plaintext, self.node_keys.public_key)
                archive_name = f"{dataset.body_dir}/{uuid.uuid4()}"
                path = self.archive_dir / archive_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                dataset.bodies.append(
                    Body(
                        archive_name,
                        header,
                        len(body),
                        crypt4gh_files.sha256_hex(plaintext),
                        crypt4gh_files.sha256_hex(body),
                    )
                )
            else:
                dataset.bodies.append(
                    write_encrypted_body(
                        self.archive_dir, f"{dataset.body_dir}/{uuid.uuid4()}", plain_size, self.node_keys.public_key
                    )
                )
        for archive in archives:
            if archive != "posix":
                server = self.servers[archive]
                client = server.client()
                for body in dataset.bodies:
                    client.upload_file(
                        str(self.archive_dir / body.archive_name), self.archive_bucket, body.archive_name
                    )
                location = f"{server.endpoint_url}/{self.archive_bucket}"
            else:
                location = str(self.archive_dir)
            dataset_id = dataset.dataset_id(archive)
            accessions = dataset.accession_ids(archive)
            record_dataset(self.sda_dsn, dataset_id, accessions, dataset.bodies, f"bench/{name}-{archive}", location)
        return dataset

    def remove_dataset_bodies(self, dataset: Dataset) -> None:
        shutil.rmtree(self.archive_dir / dataset.body_dir, ignore_errors=True)
        for server in self.servers.values():
            self._empty_bucket(server, self.archive_bucket, prefix=dataset.body_dir + "/")

    # ---- clean-up between runs --------------------------------------------------------------------

    @staticmethod
    def _empty_bucket(server, bucket: str, prefix: str = "") -> None:
        client = server.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000]})

    def clean_destinations(self) -> None:
        for directory in (self.sync_dir, self.workdir / "baseline"):
            shutil.rmtree(directory, ignore_errors=True)
        self.sync_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "baseline").mkdir(parents=True, exist_ok=True)
        for server in self.servers.values():
            self._empty_bucket(server, RCLONE_BUCKET)
        for node in self.nodes.values():
            if node.sync == "s3":
                for bucket in node.sync_buckets():
                    self._empty_bucket(node.s3, bucket)
        for server in self.servers.values():
            if hasattr(server, "collect_garbage"):
                server.collect_garbage()

    # ---- the tools --------------------------------------------------------------------------------

    def bpsync(self, case: str, dataset: Dataset, *extra: str, profile: str | None = None) -> dict[str, object]:
        """One `bpsync sync` of the dataset by the node `case` (`P→P`, `P→S3 on moto`, ...); wall time,
        peak RSS, and what the run recorded.

        With `profile` (a file name), the run is recorded by py-spy into the profile directory
        instead (collapsed stacks, every thread, idle time included); such runs are not figures.
        """
        node = self.nodes[case]
        archive = node.s3.name if node.archive == "s3" else "posix"
        env = self.python_env(node)
        prefix: list[str] = []
        if profile is not None:
            prefix = [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--rate",
                "100",
                "--idle",
                "--threads",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(self.profile_dir / profile),
                "--",
            ]
        measured = measure(
            [
                *prefix,
                sys.executable,
                "-m",
                "bpsync_dagster.cli",
                "sync",
                dataset.dataset_id(archive),
                *dataset.accession_ids(archive),
                *extra,
            ],
            env=env,
            cwd=node.root,
        )
        match = re.search(r"run ([0-9a-f-]{36})", measured.stdout)
        if match is None:
            raise RuntimeError(f"no run ID in bpsync's output:\n{measured.stdout}")
        print(
            f"bench:   bpsync sync {case} {dataset.label()}: {measured.seconds:.1f} s, peak RSS "
            f"{measured.peak_rss / MiB:.0f} MiB{' (py-spy)' if profile else ''}",
            flush=True,
        )
        return {**self._run_facts(match.group(1), measured), "seconds": measured.seconds, "peak_rss": measured.peak_rss}

    def _run_facts(self, run_id: str, measured: Measured) -> dict[str, object]:
        from dagster import DagsterEventType

        from bpsync_dagster.jobs.sync_dataset import op_step_key

        logs = self.instance.all_logs(run_id)
        facts: dict[str, object] = {"run_id": run_id, "events": len(logs)}
        steps: dict[str, dict[str, float]] = {}
        for entry in logs:
            event = entry.dagster_event
            if event is None:
                continue
            if event.step_key:
                # Steps by op name inside the synced_dataset graph; the copy batches (copy_files[0],
                # copy_files[1], ...) count as one step, first start to last end.
                name = op_step_key(event.step_key).partition("[")[0]
                step = steps.setdefault(name, {})
                if event.event_type == DagsterEventType.STEP_START:
                    step.setdefault("start", entry.timestamp)
                elif event.event_type == DagsterEventType.STEP_SUCCESS:
                    step["end"] = entry.timestamp
                elif event.event_type == DagsterEventType.STEP_OUTPUT and name == "copy_files":
                    metadata = event.step_output_data.metadata
                    facts["bytes_copied"] = facts.get("bytes_copied", 0) + metadata["bytes_copied"].value
            elif event.event_type == DagsterEventType.RUN_SUCCESS:
                facts["run_success"] = entry.timestamp
        facts["step_seconds"] = {
            key: value["end"] - value["start"] for key, value in steps.items() if "end" in value and "start" in value
        }
        first = min(entry.timestamp for entry in logs)
        facts["breakdown"] = {
            "start-up (launch → first event)": first - measured.started,
            "run (first event → RUN_SUCCESS)": facts.get("run_success", first) - first,
            "exit (RUN_SUCCESS → process end)": measured.ended - facts.get("run_success", first),
        }
        return facts

    def cp(self, dataset: Dataset) -> Measured:
        return self._baseline("cp", dataset, self._cp(dataset))

    def _cp(self, dataset: Dataset) -> Measured:
        source = self.archive_dir / dataset.body_dir
        return shell(f"cp -r {source} {self.workdir / 'baseline'}/ && sync")

    def rclone_local(self, dataset: Dataset) -> Measured:
        return self._baseline("rclone_local", dataset, self._rclone_local(dataset))

    def _rclone_local(self, dataset: Dataset) -> Measured:
        source = self.archive_dir / dataset.body_dir
        return measure(
            ["bash", "-c", f"rclone copy -q {source} {self.workdir / 'baseline' / dataset.name} && sync"],
            env=self.rclone_env,
        )

    def rclone_to_s3(self, dataset: Dataset, server: str) -> Measured:
        source = self.archive_dir / dataset.body_dir
        destination = f"DST{server.upper()}:{RCLONE_BUCKET}/{dataset.name}"
        measured = measure(["rclone", "copy", "-q", str(source), destination], env=self.rclone_env)
        return self._baseline(on("rclone_to_s3", server), dataset, measured)

    def rclone_s3_to_s3(self, dataset: Dataset, server: str) -> Measured:
        source = f"SRC{server.upper()}:{self.archive_bucket}/{dataset.body_dir}"
        destination = f"DST{server.upper()}:{RCLONE_BUCKET}/{dataset.name}"
        measured = measure(["rclone", "copy", "-q", source, destination], env=self.rclone_env)
        return self._baseline(on("rclone_s3_to_s3", server), dataset, measured)

    # ---- the table --------------------------------------------------------------------------------

    @staticmethod
    def _baseline(name: str, dataset: Dataset, measured: Measured) -> Measured:
        print(f"bench:   {name} {dataset.label()}: {measured.seconds:.1f} s", flush=True)
        return measured

    def python_env(self, node) -> dict[str, str]:
        """The node's environment (this writes its config file), with bytecode cached as installed.

        A `pip install` compiles every module, and the image does not forbid bytecode; a
        development shell may set PYTHONDONTWRITEBYTECODE, so every start would compile whatever
        has no valid .pyc (here: the edited project modules). The benchmark's processes keep
        their bytecode in a cache of their own instead, outside the source tree.
        """
        env = node.environment()
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        return env

    def profile(self, case: str, dataset: Dataset, name: str) -> None:
        """One more, unmeasured, run of the case under py-spy, when `--py-spy DIR` is given."""
        if self.profile_dir is None:
            return
        self.clean_destinations()
        facts = self.bpsync(case, dataset, profile=name)
        self.results.append({"case": f"profile {name}", "bpsync": [facts]})
        self.clean_destinations()

    def row(
        self,
        group: str,
        case: str,
        what: str,
        value: float,
        unit: str,
        baseline: str | None = None,
        ratio: float | None = None,
        target: str = "",
        met: bool | None = None,
        runs: int = 0,
    ) -> None:
        if met is not None and (value != value or (ratio is not None and ratio != ratio)):
            met = None  # not measurable here (e.g. the run took less than the fixed cost)
        self.rows.append(results_table.row(group, case, what, value, unit, baseline, ratio, target, met, runs))


def median(values: list[float]) -> float:
    return statistics.median(values)


def on(case: str, server: str | None) -> str:
    """A case as measured against an S3 server: `P→S3 on radosgw`."""
    return case if server is None else f"{case} on {server}"


def mib_per_s(size: int, seconds: float) -> float:
    return size / MiB / seconds if seconds > 0 else float("nan")


# --------------------------------------------------------------------------------------------------
# The benchmarks
# --------------------------------------------------------------------------------------------------


def teardown_seconds(imports: str, env: dict[str, str]) -> float:
    """From the moment a process that made `imports` is done to its end: the interpreter's teardown."""
    done = subprocess.run(
        [sys.executable, "-c", f"{imports}; import time; print(time.time(), flush=True)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.time() - float(done.stdout.split()[-1])


def bench_fixed_cost(bench: Bench, repeat: int) -> float:
    """A one-file 1 KiB dataset, POSIX→POSIX: what every `bpsync sync` costs before any data."""
    dataset = bench.make_dataset("tiny", 1, 1 * KiB)
    runs, startups, teardowns = [], [], []
    imports = "import bpsync_dagster.cli.main, bpsync_dagster.cli.sync_command"
    bench.clean_destinations()
    bench.bpsync("P→P", dataset)  # warm-up, not measured: fills the bytecode cache
    for _ in range(repeat):
        bench.clean_destinations()
        startups.append(
            measure(
                [sys.executable, "-m", "bpsync_dagster.cli", "--help"], env=bench.python_env(bench.nodes["P→P"])
            ).seconds
        )
        teardowns.append(teardown_seconds(imports, bench.python_env(bench.nodes["P→P"])))
        runs.append(bench.bpsync("P→P", dataset))
    bench.results.append({"case": "fixed", "startup_seconds": startups, "teardown_seconds": teardowns, "runs": runs})
    bench.profile("P→P", dataset, "fixed-cost.txt")
    fixed = median([run["seconds"] for run in runs])
    startup = median(startups)
    bench.row(
        "4 fixed cost",
        "P→P 1×1 KiB",
        "`bpsync --help` (interpreter + imports)",
        startup,
        "s",
        runs=repeat,
        baseline="itself",
        ratio=1.0,
    )
    bench.row(
        "4 fixed cost",
        "P→P 1×1 KiB",
        "`bpsync sync` whole run",
        fixed,
        "s",
        baseline="`bpsync --help`",
        ratio=fixed / startup,
        target="≤ 8 s",
        met=fixed <= 8,
        runs=repeat,
    )
    teardown = median(teardowns)
    bench.row(
        "4 fixed cost",
        "P→P 1×1 KiB",
        "  interpreter teardown after the imports (last statement → process end)",
        teardown,
        "s",
        baseline="whole run",
        ratio=teardown / fixed,
        runs=repeat,
    )
    for part in runs[0]["breakdown"]:
        value = median([run["breakdown"][part] for run in runs])
        bench.row(
            "4 fixed cost",
            "P→P 1×1 KiB",
            f"  of which {part}",
            value,
            "s",
            baseline="whole run",
            ratio=value / fixed,
            runs=repeat,
        )
    steps = ("fetch_file_records", "reencrypt_headers", "plan_copy_batches", "copy_files", "build_file_sync_manifest")
    for step in (*steps, "post_manifest"):
        value = median([run["step_seconds"].get(step, float("nan")) for run in runs])
        bench.row(
            "4 fixed cost",
            "P→P 1×1 KiB",
            f"    step {step}",
            value,
            "s",
            baseline="whole run",
            ratio=value / fixed,
            runs=repeat,
        )
    bench.row(
        "4 fixed cost",
        "P→P 1×1 KiB",
        "Dagster events written",
        median([run["events"] for run in runs]),
        "events",
        runs=repeat,
    )
    return fixed


def bench_throughput(
    bench: Bench, dataset: Dataset, repeat: int, s3_repeat: int, fixed: float, servers: tuple[str, ...], posix: bool
) -> None:
    """POSIX→POSIX (if `posix`), then POSIX→S3 and S3→S3 against each of `servers`."""
    group = "1 throughput"
    size = dataset.bytes()
    label = dataset.label()
    if posix:
        cp_runs, rclone_runs, bp_runs = [], [], []
        for _ in range(repeat):
            bench.clean_destinations()
            cp_runs.append(bench.cp(dataset).seconds)
            bench.clean_destinations()
            rclone_runs.append(bench.rclone_local(dataset).seconds)
            bench.clean_destinations()
            bp_runs.append(bench.bpsync("P→P", dataset))
        bench.clean_destinations()
        bench.results.append(
            {"case": f"P→P {label}", "bytes": size, "cp": cp_runs, "rclone": rclone_runs, "bpsync": bp_runs}
        )
        if dataset.name == "multi":
            bench.profile("P→P", dataset, f"posix-posix-{dataset.name}.txt")
        cp = mib_per_s(size, median(cp_runs))
        case = f"P→P {label}"
        bench.row(group, case, "cp + sync", cp, "MiB/s", "itself", 1.0, runs=repeat)
        rclone = mib_per_s(size, median(rclone_runs))
        bench.row(group, case, "rclone copy + sync", rclone, "MiB/s", "cp + sync", rclone / cp, runs=repeat)
        _bpsync_rows(bench, group, case, bp_runs, cp, "cp + sync", fixed, 0.9, repeat)

    for server in servers:
        for case_name, baseline_fn in (("P→S3", bench.rclone_to_s3), ("S3→S3", bench.rclone_s3_to_s3)):
            node = on(case_name, server)
            rclone_runs, bp_runs = [], []
            for _ in range(s3_repeat):
                bench.clean_destinations()
                rclone_runs.append(baseline_fn(dataset, server).seconds)
                bench.clean_destinations()
                bp_runs.append(bench.bpsync(node, dataset))
            bench.clean_destinations()
            if dataset.name == "multi" and case_name == "P→S3":
                bench.profile(node, dataset, f"posix-s3-{dataset.name}-{server}.txt")
            case = on(f"{case_name} {label}", server)
            bench.results.append(
                {"case": case, "server": server, "bytes": size, "rclone": rclone_runs, "bpsync": bp_runs}
            )
            rclone = mib_per_s(size, median(rclone_runs))
            bench.row(group, case, "rclone copy", rclone, "MiB/s", "itself", 1.0, runs=s3_repeat)
            _bpsync_rows(bench, group, case, bp_runs, rclone, "rclone copy", fixed, 1.2, s3_repeat)


def _bpsync_rows(
    bench: Bench,
    group: str,
    case: str,
    runs: list[dict],
    base: float,
    base_name: str,
    fixed: float,
    target_ratio: float,
    repeat: int,
) -> None:
    size = median([run["bytes_copied"] for run in runs])
    whole = mib_per_s(size, median([run["seconds"] for run in runs]))
    marginal = mib_per_s(size, median([run["seconds"] for run in runs]) - fixed)
    step = mib_per_s(size, median([run["step_seconds"]["copy_files"] for run in runs]))
    target = f"≥ {target_ratio}× {base_name}"
    bench.row(group, case, "bpsync sync, whole run", whole, "MiB/s", base_name, whole / base, runs=repeat)
    bench.row(
        group,
        case,
        "bpsync sync, marginal (whole − fixed cost)",
        marginal,
        "MiB/s",
        base_name,
        marginal / base,
        target=target,
        met=marginal / base >= target_ratio,
        runs=repeat,
    )
    bench.row(group, case, "bpsync copy_files step alone", step, "MiB/s", base_name, step / base, runs=repeat)
    bench.row(
        group,
        case,
        "bpsync peak RSS (process tree)",
        median([run["peak_rss"] for run in runs]) / MiB,
        "MiB",
        runs=repeat,
    )


def bench_memory(bench: Bench, small: Dataset, large: Dataset, repeat: int) -> None:
    group = "2 peak memory"
    figures = {}
    for dataset in (small, large):
        runs = []
        for _ in range(repeat):
            bench.clean_destinations()
            runs.append(bench.bpsync("P→P", dataset))
        bench.clean_destinations()
        bench.results.append({"case": f"memory {dataset.label()}", "bytes": dataset.bytes(), "bpsync": runs})
        figures[dataset.label()] = (median([run["peak_rss"] for run in runs]) / MiB, runs)
    (small_label, (small_rss, _)), (large_label, (large_rss, large_runs)) = figures.items()
    bench.row(group, f"P→P {small_label}", "bpsync sync peak RSS", small_rss, "MiB", "itself", 1.0, runs=repeat)
    bench.row(
        group,
        f"P→P {large_label}",
        "bpsync sync peak RSS",
        large_rss,
        "MiB",
        f"{small_label} file",
        large_rss / small_rss,
        target="≤ 1.1× and < 300 MiB",
        met=large_rss / small_rss <= 1.1 and large_rss < 300,
        runs=repeat,
    )
    seconds = median([run["seconds"] for run in large_runs])
    bench.row(
        group,
        f"P→P {large_label}",
        "bpsync sync, whole run (for reference)",
        mib_per_s(large.bytes(), seconds),
        "MiB/s",
        runs=repeat,
    )


def bench_memory_bounded(bench: Bench, large: Dataset, many: Dataset, repeat: int, servers: tuple[str, ...]) -> None:
    """Peak RSS of a large file to S3, and of many files copied at once (`--parallel-files` = their
    number) to POSIX and S3: the copy buffers stay within `sync.copy.bufferLimit` (512 MiB)."""
    group = "2 peak memory"
    limit_mib = 512
    cases = [("P→P", None, many)] + [
        ("P→S3", server, dataset) for server in servers if server == "moto" for dataset in (large, many)
    ]
    for kind, server, dataset in cases:
        case = on(kind, server)
        extra = ("--parallel-files", str(dataset.files)) if dataset.files > 1 else ()
        runs = []
        for _ in range(repeat):
            bench.clean_destinations()
            runs.append(bench.bpsync(case, dataset, *extra))
        bench.clean_destinations()
        label = on(f"{kind} {dataset.label()}", server)
        bench.results.append({"case": f"memory {label}", "bytes": dataset.bytes(), "bpsync": runs})
        rss = median([run["peak_rss"] for run in runs]) / MiB
        what = "bpsync sync peak RSS" + (f", --parallel-files {dataset.files}" if extra else "")
        bench.row(
            group,
            label,
            what,
            rss,
            "MiB",
            target=f"< {limit_mib} MiB of buffers + 300",
            met=rss < limit_mib + 300,
            runs=repeat,
        )


def bench_small_files(
    bench: Bench, dataset: Dataset, repeat: int, s3_repeat: int, fixed: float, servers: tuple[str, ...]
) -> None:
    """Files per second of many small files, P→P and P→S3 on each of `servers`; bpsync's whole run,
    and its marginal rate (files / (whole run − the fixed cost)) as the throughput rows have it."""
    group = "3 small files"
    count = dataset.files
    cases = [("P→P", None, repeat, (("cp + sync", bench.cp), ("rclone copy + sync", bench.rclone_local)))]
    for server in servers:
        cases.append(("P→S3", server, s3_repeat, (("rclone copy", partial(bench.rclone_to_s3, server=server)),)))
    for kind, server, n, baselines in cases:
        case = on(kind, server)
        label = on(f"{kind} {dataset.label()}", server)
        base_runs: dict[str, list[float]] = {name: [] for name, _ in baselines}
        bp_runs = []
        for _ in range(n):
            for name, function in baselines:
                bench.clean_destinations()
                base_runs[name].append(function(dataset).seconds)
            bench.clean_destinations()
            bp_runs.append(bench.bpsync(case, dataset))
        bench.clean_destinations()
        bench.results.append({"case": f"small {label}", "files": count, "baselines": base_runs, "bpsync": bp_runs})
        if case == "P→P":
            bench.profile(case, dataset, f"small-{case.replace('→', '-').lower()}.txt")
        first = baselines[0][0]
        base_rate = count / median(base_runs[first])
        for name, _ in baselines:
            rate = count / median(base_runs[name])
            bench.row(group, label, f"{name}, files/s", rate, "files/s", first, rate / base_rate, runs=n)
        seconds = median([run["seconds"] for run in bp_runs])
        rate = count / seconds
        target = "≥ 0.5× cp + sync" if kind == "P→P" else ""
        met = rate / base_rate >= 0.5 if kind == "P→P" else None
        bench.row(
            group,
            label,
            "bpsync sync, files/s",
            rate,
            "files/s",
            first,
            rate / base_rate,
            target=target,
            met=met,
            runs=n,
        )
        if fixed == fixed and seconds > fixed:
            marginal = count / (seconds - fixed)
            met = marginal / base_rate >= 0.5 if kind == "P→P" else None
            bench.row(
                group,
                label,
                "bpsync sync, files/s marginal (whole − fixed cost)",
                marginal,
                "files/s",
                first,
                marginal / base_rate,
                target=target,
                met=met,
                runs=n,
            )
        target = "< 60 s" if kind == "P→P" else ""
        met = (seconds < 60) if kind == "P→P" and count >= 2000 else None
        bench.row(
            group,
            label,
            "bpsync sync, total time",
            seconds,
            "s",
            first,
            seconds / median(base_runs[first]),
            target=target,
            met=met,
            runs=n,
        )
        step = median([run["step_seconds"]["copy_files"] for run in bp_runs])
        bench.row(group, label, "  of which copy_files step", step, "s", "whole run", step / seconds, runs=n)
        events = median([run["events"] for run in bp_runs])
        bench.row(group, label, "Dagster events written", events, "events", "files", events / count, runs=n)


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def run(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    import dagster

    memory = next((line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "?")
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "memory": memory.split(":", 1)[1].strip(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "rclone": run(["rclone", "version"]).splitlines()[0] if shutil.which("rclone") else "missing",
        "cp": run(["cp", "--version"]).splitlines()[0],
        "postgres": run(["psql", "--version"]),
        "disk": run(["df", "-h", "--output=source,fstype,size,avail", str(PROJECT_ROOT)]).replace("\n", " / "),
    }


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------

PROFILES = {
    "full": {
        "throughput": [("multi", 8, 256 * MiB), ("single", 1, 2 * GiB)],
        # radosgw's OSD holds every object in memory (RADOSGW_BYTES at most, garbage included): the
        # archived bodies and one copy at a time, the garbage collected between runs.
        "radosgw_throughput": [("multi", 8, 256 * MiB), ("single", 1, 2 * GiB)],
        "memory": [("mem-small", 1, 256 * MiB), ("mem-large", 1, 4 * GiB)],
        "memory_parallel": ("mem-many", 64, 64 * MiB),
        "small": ("small", 2000, 4 * KiB),
        "repeat": 3,
        "s3_repeat": 3,
        "fixed_repeat": 5,
        "disk_needed": 22 * GiB,
    },
    "quick": {
        "throughput": [("multi", 2, 1 * MiB)],
        "radosgw_throughput": [("multi", 2, 1 * MiB)],
        "memory": [("mem-small", 1, 1 * MiB), ("mem-large", 1, 4 * MiB)],
        "memory_parallel": ("mem-many", 64, 64 * KiB),
        "small": ("small", 20, 4 * KiB),
        "repeat": 1,
        "s3_repeat": 1,
        "fixed_repeat": 1,
        "disk_needed": 100 * MiB,
    },
}

PARTS = ("fixed", "throughput", "memory", "small", "latency", "many")


def throughput_datasets(
    profile: dict, servers: tuple[str, ...]
) -> list[tuple[tuple[str, int, int], tuple[str, ...], bool]]:
    """Each throughput dataset, the S3 servers it is measured on, and whether POSIX→POSIX is: the
    profile's `throughput` datasets on POSIX and moto, its `radosgw_throughput` ones on radosgw."""
    on_radosgw = profile["radosgw_throughput"] if "radosgw" in servers else []
    plan = [
        (spec, tuple(s for s in servers if s == "moto" or spec in on_radosgw), True) for spec in profile["throughput"]
    ]
    return plan + [(spec, ("radosgw",), False) for spec in on_radosgw if spec not in profile["throughput"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repetition (seconds), for CI")
    parser.add_argument("--repeat", type=int, help="repetitions of each POSIX→POSIX figure (default 3; 1 with --quick)")
    parser.add_argument("--s3-repeat", type=int, help="repetitions of each S3 figure (default 3; 1 with --quick)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument(
        "--s3", nargs="+", choices=S3_SERVERS, default=list(S3_SERVERS), help="the S3 servers to measure against"
    )
    parser.add_argument("--json", type=Path, help="write the table and every raw measurement here")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="after the measured runs, profile one more run of some cases with py-spy into DIR",
    )
    parser.add_argument("--workdir", type=Path, help="parent of the temporary directory (default: $TMPDIR)")
    parser.add_argument(
        "--memory-sizes",
        nargs=2,
        type=int,
        metavar=("LARGE_MIB", "EACH_MIB"),
        help="the memory part's large file, and each of its 64 files copied at once, in MiB (default 4096 64)",
    )
    parser.add_argument(
        "--posix-only",
        action="store_true",
        help="only the POSIX→POSIX cases of the throughput, memory and small-files parts (an S3 server still starts)",
    )
    parser.add_argument("--serve-s3", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_s3:
        serve_s3()
        return 0
    profile = PROFILES["quick" if args.quick else "full"]
    repeat = args.repeat or profile["repeat"]
    s3_repeat = args.s3_repeat or profile["s3_repeat"]
    fixed_repeat = max(profile["fixed_repeat"], repeat) if not args.quick else 1
    if shutil.which("rclone") is None:
        print("bench: rclone is missing: apt-get install -y rclone", file=sys.stderr)
        return 2
    if "radosgw" in args.s3 and shutil.which("radosgw") is None:
        print("bench: radosgw is missing: apt-get install -y ceph-mon ceph-osd radosgw ceph-common", file=sys.stderr)
        return 2
    servers = tuple(name for name in S3_SERVERS if name in args.s3)
    case_servers = () if args.posix_only else servers

    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < profile["disk_needed"]:
        print(
            f"bench: {parent} has {free / GiB:.1f} GiB free, needs {profile['disk_needed'] / GiB:.1f} GiB",
            file=sys.stderr,
        )
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bpsync-bench-", dir=parent))
    started = time.monotonic()
    command = " ".join(["python bench/run.py", *(sys.argv[1:] if argv is None else argv)]).strip()
    print(f"bench: {command}; working in {workdir}", flush=True)

    def progress(message: str) -> None:
        print(f"bench: [{time.monotonic() - started:6.0f} s] {message}", flush=True)

    def save(bench: "Bench", table: str) -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps(
                    {
                        "command": command,
                        "machine": machine(),
                        "elapsed_seconds": time.monotonic() - started,
                        "repeat": repeat,
                        "s3_repeat": s3_repeat,
                        "fixed_repeat": fixed_repeat,
                        "rows": bench.rows,
                        "raw": bench.results,
                        "table": table,
                    },
                    indent=1,
                    default=str,
                )
            )

    try:
        with Bench(workdir, args.quick, servers) as bench:
            if args.py_spy:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                bench.profile_dir = args.py_spy.resolve()
            fixed = float("nan")
            if {"fixed", "throughput", "small"} & set(args.only):
                progress("fixed cost (1 KiB dataset)")
                fixed = bench_fixed_cost(bench, fixed_repeat)
                save(bench, results_table.print_table(bench.rows))
            if "memory" in args.only:
                (small_name, _, small_size), (large_name, _, large_size) = profile["memory"]
                progress("making the memory datasets")
                many_name, many_count, many_size = profile["memory_parallel"]
                if args.memory_sizes:
                    large_size, many_size = (size * MiB for size in args.memory_sizes)
                small = bench.make_dataset(small_name, 1, small_size)
                large = bench.make_dataset(large_name, 1, large_size)
                many = bench.make_dataset(many_name, many_count, many_size)
                progress("peak memory")
                bench_memory(bench, small, large, repeat)
                bench_memory_bounded(bench, large, many, s3_repeat, case_servers)
                bench.remove_dataset_bodies(small)
                bench.remove_dataset_bodies(large)
                bench.remove_dataset_bodies(many)
                save(bench, results_table.print_table(bench.rows))
            if "small" in args.only:
                name, count, size = profile["small"]
                progress(f"making {count} small files")
                dataset = bench.make_dataset(name, count, size)
                progress("small files")
                bench_small_files(bench, dataset, repeat, s3_repeat, fixed, case_servers)
                save(bench, results_table.print_table(bench.rows))
            if "throughput" in args.only:
                for spec, measured_on, posix in throughput_datasets(profile, case_servers):
                    name, count, size = spec
                    progress(f"making {count}×{_size_label(size)} ({name})")
                    dataset = bench.make_dataset(name, count, size, archives=("posix", *measured_on))
                    progress(f"throughput {dataset.label()}")
                    bench_throughput(bench, dataset, repeat, s3_repeat, fixed, measured_on, posix)
                    bench.remove_dataset_bodies(dataset)
                    save(bench, results_table.print_table(bench.rows))
            daemon_parts = tuple(part for part in ("latency", "many") if part in args.only)
            if daemon_parts:
                progress(f"with the daemon: {', '.join(daemon_parts)}")
                bench.rows += daemon_runs.measure(workdir / "daemon", args.quick, progress, daemon_parts)
                save(bench, results_table.print_table(bench.rows))
            table = results_table.print_table(bench.rows)
            elapsed = time.monotonic() - started
            print()
            print(table)
            print(f"\nbench: done in {elapsed:.0f} s; medians of the runs shown; MiB = 2^20 bytes", flush=True)
            save(bench, table)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
