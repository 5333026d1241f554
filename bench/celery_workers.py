#!/usr/bin/env python3
"""Copy throughput of one dataset in-process, and with the Celery executor over one and two workers
(issue 15, item 4; the figures are in docs/scaling.md).

    python bench/celery_workers.py                      # 16 × 64 MiB, POSIX→POSIX and S3→S3 (moto), 3 runs each
    python bench/celery_workers.py --files 8 --mib 8 --repeat 1 --storage posix   # a quick look

Built from the tests' support code like bench/run.py: an SDA database and a Dagster database of
its own on the local PostgreSQL, crypt4gh keys, the stand-in remote sync API, moto in a child
process, a RabbitMQ vhost of its own (guest), and `celery -A bpsync_dagster.jobs.celery_worker
worker --concurrency 1` processes, each in a directory of its own. Each sync is the real `bpsync
sync` in a fresh process. The copy phase is from the first `STEP_START` of a `copy_files[…]` step to
the last `STEP_SUCCESS` of one, read back from the Dagster instance; throughput is the sum of their
`bytes_copied` over it. Everything is removed at the end.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import daemon_runs  # noqa: E402
import run as bench_run  # noqa: E402
from dagster import DagsterEventType, DagsterInstance  # noqa: E402

from bpsync_dagster.jobs.sync_dataset import is_copy_step  # noqa: E402
from bpsync_dagster_tests.support import crypt4gh_files  # noqa: E402
from bpsync_dagster_tests.support.environment import (  # noqa: E402
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
from bpsync_dagster_tests.support.processes import ServiceProcess  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402

MiB = 1024 * 1024


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *arguments], capture_output=True, timeout=60).check_returncode()


def start_worker(name: str, workdir: Path, environment: dict[str, str]) -> ServiceProcess:
    directory = workdir / f"worker-{name}-{uuid.uuid4().hex[:4]}"
    directory.mkdir()
    arguments = ["-A", "bpsync_dagster.jobs.celery_worker", "worker", "--concurrency", "1"]
    arguments += ["--prefetch-multiplier", "1", "-Q", "dagster", "-n", f"{name}@%h", "--loglevel", "INFO"]
    worker = ServiceProcess("celery", arguments, environment, directory / "worker.log")
    worker.start()
    deadline = time.monotonic() + 120
    while " ready." not in worker.log():
        if worker.exit_status() is not None or time.monotonic() > deadline:
            worker.stop()
            raise RuntimeError(f"worker {name} did not start:\n{worker.log()[-3000:]}")
        time.sleep(0.2)
    return worker


def copy_phase(instance: DagsterInstance, run_id: str) -> tuple[float, int]:
    """Seconds from the first copy step's start to the last one's success, and the bytes they copied."""
    starts, ends, copied = [], [], 0
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not is_copy_step(event.step_key or ""):
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts.append(entry.timestamp)
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            ends.append(entry.timestamp)
        elif event.event_type == DagsterEventType.STEP_OUTPUT:
            copied += int(event.step_output_data.metadata["bytes_copied"].value)
    return max(ends) - min(starts), copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--mib", type=int, default=64, help="plaintext MiB per file")
    parser.add_argument("--batch-files", type=int, default=4, help="files per batch with Celery")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--storage", nargs="+", choices=("posix", "s3"), default=["posix", "s3"])
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args(argv)

    rows: list[dict[str, object]] = []
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="bpsync-bench-celery-"))
        stack.callback(shutil.rmtree, workdir, True)
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
        sda_db, dagster_db, vhost = f"bpsync_bench_sda_{tag}", f"bpsync_bench_dagster_{tag}", f"bpsync_bench_{tag}"
        keys_dir = workdir / "keys"
        keys_dir.mkdir()
        node_keys = crypt4gh_files.make_key_pair(keys_dir, "node", NODE_PASSPHRASE)
        receiver_keys = crypt4gh_files.make_key_pair(keys_dir, "receiver", "receiver-passphrase")
        sda_dsn = create_sda_database(sda_db)
        stack.callback(drop_database, sda_db)
        dagster_env = create_dagster_database(dagster_db)
        stack.callback(drop_database, dagster_db)
        rabbitmqctl("add_vhost", vhost)
        stack.callback(rabbitmqctl, "delete_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        s3 = bench_run._subprocess_s3_server_class()()
        s3.start()
        stack.callback(s3.stop)
        for bucket in (ARCHIVE_BUCKET, "steps"):
            s3.client().create_bucket(Bucket=bucket)
        remote = StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA)
        remote.start()
        stack.callback(remote.stop)

        bodies = [
            bench_run.write_encrypted_body(
                workdir / "archive", f"bench/{index:04d}", arguments.mib * MiB, node_keys.public_key
            )
            for index in range(arguments.files)
        ]
        for body in bodies:
            s3.client().upload_file(str(workdir / "archive" / body.archive_name), ARCHIVE_BUCKET, body.archive_name)
        total = sum(body.size for body in bodies)

        for storage in arguments.storage:
            node = daemon_runs.BenchNode(
                root=workdir / f"node-{storage}",
                archive=storage,
                sync=storage,
                node_keys=node_keys,
                receiver_keys=receiver_keys,
                sda_dsn=sda_dsn,
                s3=s3,
                remote=remote,
                dagster_home=make_dagster_home(workdir / f"dagster_home-{storage}"),
                dagster_env=dagster_env,
                sync_s3_options={"chunk_size": "50MB"},
                sda_database_name=sda_db,
                prefix=f"b{uuid.uuid4().hex[:8]}",
            )
            node.root.mkdir()
            if storage == "posix":
                shutil.copytree(workdir / "archive", node.archive_dir)
            location = node.archive_location()
            dataset_id = f"SYNC-BENCH-CELERY-{storage.upper()}"
            accessions = [f"{dataset_id}-F{index:04d}" for index in range(len(bodies))]
            bench_run.record_dataset(sda_dsn, dataset_id, accessions, bodies, f"bench/{storage}", location)
            in_process = node.environment()
            step_storage = str(workdir / "steps") if storage == "posix" else "s3://steps/runs"
            celery = {
                **in_process,
                "BPSYNC_EXECUTOR": "celery",
                "BPSYNC_CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                "BPSYNC_STEP_STORAGE": step_storage,
                "BPSYNC_STEP_STORAGE_ENDPOINT": s3.endpoint_url,
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            instance = node.instance()
            stack.callback(instance.dispose)
            batch = ["--max-batch-files", str(arguments.batch_files)]
            cases = [("in-process, 1 batch", in_process, [], 0), ("in-process", in_process, batch, 0)]
            cases += [("Celery, 1 worker", celery, batch, 1), ("Celery, 2 workers", celery, batch, 2)]
            for case, environment, extra, worker_count in cases:
                workers = [start_worker(f"w{number}", workdir, environment) for number in range(1, worker_count + 1)]
                try:
                    measured = []
                    for _ in range(arguments.repeat):
                        started = time.monotonic()
                        result = subprocess.run(
                            [sys.executable, "-m", "bpsync_dagster.cli", "sync", dataset_id, *accessions, *extra],
                            env=environment,
                            cwd=node.root,
                            capture_output=True,
                            text=True,
                            timeout=1800,
                        )
                        seconds = time.monotonic() - started
                        if result.returncode != 0:
                            raise RuntimeError(f"{case}: bpsync sync failed:\n{result.stdout}\n{result.stderr}")
                        run_id = result.stdout.split(" run ", 1)[1].split()[0]
                        phase, copied = copy_phase(instance, run_id)
                        assert copied >= total, (copied, total)
                        measured.append((seconds, phase))
                        print(f"bench: {storage} {case}: run {seconds:.1f} s, copy phase {phase:.1f} s", flush=True)
                finally:
                    for worker in workers:
                        worker.stop()
                run_seconds = statistics.median(value for value, _ in measured)
                phase = statistics.median(value for _, value in measured)
                rows.append(
                    {
                        "storage": "POSIX→POSIX" if storage == "posix" else "S3→S3 (moto)",
                        "case": case,
                        "dataset": f"{arguments.files}×{arguments.mib} MiB",
                        "batches": 1 if not extra else -(-arguments.files // arguments.batch_files),
                        "run_seconds": round(run_seconds, 2),
                        "copy_seconds": round(phase, 2),
                        "copy_mib_per_s": round(total / MiB / phase, 1),
                        "runs": arguments.repeat,
                    }
                )
    print("| storage | case | dataset | batches | whole run (s) | copy phase (s) | copy MiB/s | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
