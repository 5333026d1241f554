"""`bpsync sync` is SIGKILLed at a random point of the copy; `bpsync reexecute RUN_ID` finishes it.

After the re-execution every object decrypts to its plaintext, no temporary object of the killed
run is visible (POSIX `.*.bpsync-partial` files, S3 multipart uploads: the re-execution aborts the
killed run's), the manifest was POSTed exactly once and only when every file was in place. The kill point is a random fraction of the dataset's bytes seen in
sync storage; trials alternate POSIX and S3 sync storage. `BPSYNC_KILL_TRIALS` sets the number of
trials (default 3; the full loop is 20), `BPSYNC_KILL_SEED` replays a printed seed.
"""

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.client import BaseClient

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faults import (
    ManifestWitness,
    assert_no_open_multipart_uploads,
    open_multipart_uploads,
    partial_files,
    read_until,
    run_id_of,
    start_bpsync,
    wait_for,
    witnessed_remote,
)
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint

MIB = 1024 * 1024
FILES = 6
KILL_TRIALS = int(os.environ.get("BPSYNC_KILL_TRIALS", "3"))
# A trial waits at most 120 s for its kill point and 300 s for its re-execution.
TRIAL_SECONDS = 420


@dataclass
class Trial:
    number: int
    sync: str
    target_fraction: float
    fraction_at_kill: float = 0.0
    complete_at_kill: int = 0
    temporary_at_kill: int = 0
    reexecution: str = ""
    posts: int = 0
    stale_uploads: int = 0

    def describe(self) -> str:
        return (
            f"trial {self.number:2d} {self.sync:5s}: kill at {self.target_fraction:.2f} of the bytes "
            f"(seen {self.fraction_at_kill:.2f}, {self.complete_at_kill}/{FILES} files complete, "
            f"{self.temporary_at_kill} temporary); re-execution: {self.reexecution}; POSTs {self.posts}; "
            f"stale S3 uploads {self.stale_uploads}"
        )


@pytest.fixture
def witness(make_node) -> Iterator[ManifestWitness]:
    remote, witness = witnessed_remote(make_node())
    yield witness
    remote.stop()


def trial_node(make_node, witness: ManifestWitness, root: Path, sync: str) -> Node:
    node: Node = make_node("posix", sync)
    node.root = root
    assert witness.remote is not None
    node.remote, witness.node = witness.remote, node
    return node


def bytes_in_sync_storage(node: Node) -> int:
    """Bytes written so far under the node's prefix: objects, temporary files and uploaded parts."""
    if node.sync == "posix":
        return sum(path.stat().st_size for path in node.sync_dir.rglob("*") if path.is_file())
    client, total = node.s3.client(), 0
    for bucket in node.sync_buckets():
        total += sum(item["Size"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            try:
                parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            except client.exceptions.NoSuchUpload:  # completed since it was listed
                continue
            total += sum(part["Size"] for part in parts.get("Parts", []))
    return total


def temporary_objects(node: Node) -> list[str]:
    return partial_files(node) if node.sync == "posix" else open_multipart_uploads(node)


def kill_during_copy(node: Node, dataset_id: str, total_bytes: int, fraction: float) -> tuple[str, float]:
    """Start `bpsync sync`, SIGKILL it once `fraction` of the bytes are in sync storage; its run ID."""
    process = start_bpsync(node, *node.sync_arguments(dataset_id))
    try:
        lines = read_until(process, "copy_files[0] ...")
        wait_for(lambda: bytes_in_sync_storage(node) >= fraction * total_bytes, timeout=120, interval=0.005)
    finally:
        process.kill()
        process.wait()
    return run_id_of("".join(lines)), bytes_in_sync_storage(node) / total_bytes


def copy_summary(output: str) -> str:
    """`N files copied, M already in place, B bytes` from the CLI's last line."""
    line = next((line for line in output.splitlines() if " synced: " in line), "")
    return line.partition(" synced: ")[2].partition(";")[0]


def run_trial(node: Node, witness: ManifestWitness, trial: Trial, rng: random.Random) -> None:
    dataset_id = node.dataset_id(f"killed-{trial.number}")
    sizes = [rng.randint(6 * MIB, 11 * MIB) for _ in range(FILES)]
    files = node.add_dataset(
        dataset_id, [(f"killed/{index}.c4gh", rng.randbytes(size)) for index, size in enumerate(sizes)]
    )
    witness.expect(dataset_id, files)

    run_id, trial.fraction_at_kill = kill_during_copy(node, dataset_id, sum(sizes), trial.target_fraction)
    trial.complete_at_kill = sum(node.synced_object(item.path) is not None for item in files)
    trial.temporary_at_kill = len(temporary_objects(node))
    assert witness.posts[dataset_id] == 0, "the killed run POSTed"

    resumed = node.bpsync("reexecute", run_id, timeout=300)
    trial.reexecution = copy_summary(resumed.stdout) or f"exit {resumed.returncode}"
    trial.posts = witness.posts[dataset_id]
    assert resumed.returncode == 0, f"{trial.describe()}\n{resumed.stdout}\n{resumed.stderr}"
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext, f"{trial.describe()}: {item.path}"
    assert partial_files(node) == [], trial.describe()
    stale = set(open_multipart_uploads(node)) if node.sync == "s3" else set()
    trial.stale_uploads = len(stale)
    assert stale == set(), f"{trial.describe()}: uploads left open: {stale}"
    assert trial.posts == 1 and witness.problems == [], f"{trial.describe()}: {witness.problems}"


@pytest.mark.timeout(300 + TRIAL_SECONDS * KILL_TRIALS)
def test_a_killed_sync_is_finished_by_reexecution(make_node, witness: ManifestWitness, tmp_path: Path) -> None:
    trials = KILL_TRIALS
    seed = int(os.environ.get("BPSYNC_KILL_SEED") or random.randrange(2**32))
    print(f"\nkill trials: {trials}, seed: {seed} (replay with BPSYNC_KILL_SEED={seed})")
    rng = random.Random(seed)
    done: list[Trial] = []
    began = time.monotonic()
    try:
        for number in range(trials):
            trial = Trial(number, "posix" if number % 2 == 0 else "s3", rng.uniform(0.02, 0.95))
            done.append(trial)
            node = trial_node(make_node, witness, tmp_path / f"trial-{number}", trial.sync)
            run_trial(node, witness, trial, rng)
    finally:
        for trial in done:
            print(trial.describe())
        print(f"{len(done)} trials in {time.monotonic() - began:.0f} s; POSTs per dataset: {dict(witness.posts)}")


def stopped_with_a_stored_part(process: subprocess.Popen[str], client: BaseClient, bucket: str) -> bool:
    """Stop `process` (SIGSTOP) and tell whether one of its multipart uploads in `bucket` has a part
    stored; if none has, let it go on (SIGCONT). Checked every few milliseconds, with the process
    stopped while it is checked, it cannot complete an upload of many parts unseen."""
    if process.poll() is not None:
        raise AssertionError(f"bpsync ended (exit {process.returncode}) before a part was stored")
    process.send_signal(signal.SIGSTOP)
    try:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except client.exceptions.NoSuchBucket:
        uploads = []
    for upload in uploads:
        if client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts"):
            return True
    process.send_signal(signal.SIGCONT)
    return False


def kill_point(stack: ExitStack, node: Node) -> tuple[int, Callable[[subprocess.Popen[str]], None], Callable[[], None]]:
    """The file size, a wait that returns when `bpsync` has a multipart upload open with a part sent,
    and what to do once it is killed.

    moto: a private interruptible server holds the first part; the kill comes while it is held.
    radosgw, where nothing can hold a part: a 64 MiB file is 13 parts of 5 MB; `bpsync` runs in
    slices of a few milliseconds, stopped between them, until the gateway has stored one part, and
    is killed then.
    """
    if node.s3.name == "moto":
        private_s3 = stack.enter_context(InterruptibleS3Server())
        node.s3 = private_s3
        gate = private_s3.hold_upload_parts()

        def part_held(_process: subprocess.Popen[str]) -> None:
            assert gate.wait_until_held(1, timeout=120), "the upload sent no part"

        return 16 * MIB, part_held, gate.open

    client, bucket = node.s3.client(), f"{node.bucket_prefix}1"

    def part_stored(process: subprocess.Popen[str]) -> None:
        wait_for(lambda: stopped_with_a_stored_part(process, client, bucket), timeout=120, interval=0.01)

    return 64 * MIB, part_stored, lambda: None


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_a_killed_s3_upload_is_aborted_by_the_reexecution(
    make_node, witness: ManifestWitness, tmp_path: Path, s3_server: S3Endpoint
) -> None:
    node = trial_node(make_node, witness, tmp_path, "s3")
    with ExitStack() as stack:
        size, wait_for_a_part, after_the_kill = kill_point(stack, node)
        dataset_id = node.dataset_id("killed-upload")
        files = node.add_dataset(dataset_id, [("killed/upload.c4gh", os.urandom(size))])
        witness.expect(dataset_id, files)
        process = start_bpsync(node, *node.sync_arguments(dataset_id))
        try:
            lines = read_until(process, "copy_files[0] ...")
            wait_for_a_part(process)
        finally:
            process.kill()
            process.wait()
            after_the_kill()
        left_open = open_multipart_uploads(node)
        finished_before_the_kill = node.synced_object(files[0].path) is not None

        resumed = node.bpsync("reexecute", run_id_of("".join(lines)))

        assert left_open and not finished_before_the_kill, f"open uploads at the kill: {left_open}"
        assert resumed.returncode == 0, resumed.stderr
        assert node.decrypt_synced(files[0].path) == files[0].plaintext
        assert witness.posts[dataset_id] == 1 and witness.problems == []
        assert_no_open_multipart_uploads(node)
