"""The bytes a sync holds in copy buffers stay within its limit, whatever `parallel_files`, against real
archive and sync storage; a part larger than the limit still goes through, alone."""

import hashlib
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage import ArchiveStorage, SyncStorage, copy_file
from bpsync_dagster.storage.byte_budget import ByteBudget
from bpsync_dagster.storage.transfer import CHUNKS_HELD, HASH_WINDOW_SIZE, READ_SIZE
from bpsync_dagster_tests.support.faults import wait_for
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint, s3_sync_storage

MiB = 1024 * 1024
HEADER = b"crypt4gh header stand-in"


def archived_files(root: Path, count: int, size: int) -> tuple[ArchiveStorage, list[tuple[FileRecord, bytes]]]:
    """`count` archived bodies of `size` bytes in a POSIX archive, with their records."""
    files = []
    for index in range(count):
        body = os.urandom(size)
        (root / f"body-{index}").write_bytes(body)
        record = FileRecord(
            accession_id=f"F-{index:03d}",
            submission_user="user",
            submission_file_path=f"user/file-{index:03d}.c4gh",
            archive_location=str(root),
            archive_file_path=f"body-{index}",
            archive_file_size=size,
            header_hex=HEADER.hex(),
            unencrypted_sha256=None,
            archived_sha256=hashlib.sha256(body).hexdigest(),
        )
        files.append((record, body))
    return ArchiveStorage(StorageSettings("archive", posix=(PosixStorage(root),))), files


def s3_sync(server: S3Endpoint, chunk_size: int, buffer_limit: int) -> tuple[SyncStorage, str]:
    prefix = f"budget-{uuid.uuid4().hex[:8]}-"
    return s3_sync_storage(server, prefix, chunk_size, buffer_limit), f"{prefix}1"


def copy_all(files: list[tuple[FileRecord, bytes]], archive: ArchiveStorage, sync: SyncStorage) -> None:
    """Copy every file at once, one thread each, as `copy_files` with `parallel_files` = len(files)."""
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        for future in [pool.submit(copy_file, record, HEADER, archive, sync, False) for record, _ in files]:
            future.result(timeout=300)


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_many_parallel_s3_copies_hold_no_more_than_the_limit(tmp_path: Path, s3_server: S3Endpoint) -> None:
    chunk, limit = 5 * MiB, 100 * MiB
    archive, files = archived_files(tmp_path, count=12, size=12 * MiB + 5)
    sync, bucket = s3_sync(s3_server, chunk, limit)
    one_copy = CHUNKS_HELD * READ_SIZE + chunk  # its read-ahead and the part it fills

    copy_all(files, archive, sync)

    assert sync.budget.held == 0
    assert 2 * one_copy <= sync.budget.peak <= limit < len(files) * one_copy
    client = s3_server.client()
    for record, body in files:
        stored = client.get_object(Bucket=bucket, Key=record.submission_file_path)["Body"].read()
        assert stored == HEADER + body


def test_many_parallel_posix_copies_hold_no_more_than_the_limit(tmp_path: Path) -> None:
    limit = 3 * HASH_WINDOW_SIZE  # a copy in the kernel holds one hash window
    (tmp_path / "archive").mkdir()
    archive, files = archived_files(tmp_path / "archive", count=16, size=9 * MiB)
    sync = SyncStorage(StorageSettings("sync", posix=(PosixStorage(tmp_path / "sync"),)), limit)

    copy_all(files, archive, sync)

    assert sync.budget.held == 0
    assert 2 * HASH_WINDOW_SIZE <= sync.budget.peak <= limit < len(files) * HASH_WINDOW_SIZE
    for record, body in files:
        assert (tmp_path / "sync" / record.submission_file_path).read_bytes() == HEADER + body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
def test_a_copy_whose_part_is_larger_than_the_limit_goes_through_alone(tmp_path: Path, s3_server: S3Endpoint) -> None:
    chunk, limit = 20 * MiB, 16 * MiB
    archive, files = archived_files(tmp_path, count=3, size=45 * MiB)
    sync, bucket = s3_sync(s3_server, chunk, limit)

    copy_all(files, archive, sync)

    assert sync.budget.peak == CHUNKS_HELD * READ_SIZE + chunk  # one copy at a time, no second buffer
    client = s3_server.client()
    for record, body in files:
        stored = client.get_object(Bucket=bucket, Key=record.submission_file_path)
        assert stored["Body"].read() == HEADER + body
        assert stored["ETag"].strip('"').endswith("-3")


# Copies 48 files of 24 MiB at once, POSIX to POSIX, within a 128 MiB budget, in a fresh process; prints
# its RSS before the copies and its peak RSS (VmHWM: getrusage's ru_maxrss would count the RSS of the
# forking test process too), in bytes.
COPY_IN_A_FRESH_PROCESS = """
import hashlib, json, os, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage import ArchiveStorage, SyncStorage, copy_file

root, limit = Path(sys.argv[1]), int(sys.argv[2])
(root / "archive").mkdir()
body = os.urandom(24 * 1024 * 1024)
digest = hashlib.sha256(body).hexdigest()
records = []
for index in range(48):
    (root / "archive" / f"body-{index}").write_bytes(body)
    path = f"user/file-{index}.c4gh"
    records.append(FileRecord(f"F-{index}", "user", path, str(root / "archive"), f"body-{index}", len(body), "00", None, digest))
del body
archive = ArchiveStorage(StorageSettings("archive", posix=(PosixStorage(root / "archive"),)))
sync = SyncStorage(StorageSettings("sync", posix=(PosixStorage(root / "sync"),)), limit)
def status(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) * 1024
before = status("VmRSS")
with ThreadPoolExecutor(max_workers=len(records)) as pool:
    list(pool.map(lambda record: copy_file(record, b"header", archive, sync, False), records))
print(json.dumps({"before": before, "peak": status("VmHWM"), "budget_peak": sync.budget.peak}))
"""


def test_the_process_memory_follows_the_budget(tmp_path: Path) -> None:
    limit = 128 * MiB
    done = subprocess.run(
        [sys.executable, "-c", COPY_IN_A_FRESH_PROCESS, str(tmp_path), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout)

    assert figures["budget_peak"] <= limit
    # Within the budget, plus the interpreter's own growth and the threads' stacks; freed chunks
    # kept by the C library's arenas would add hundreds of MiB.
    assert figures["peak"] - figures["before"] <= limit + 48 * MiB, figures


def test_requests_are_granted_in_order_and_a_large_one_waits_until_nothing_is_held() -> None:
    budget = ByteBudget(100)
    budget.acquire(60)
    granted: list[str] = []

    def take(name: str, size: int) -> None:
        budget.acquire(size)
        granted.append(name)

    with ThreadPoolExecutor(max_workers=2) as pool:
        large = pool.submit(take, "large", 150)
        wait_for(lambda: budget.waiting == 1, timeout=10)
        small = pool.submit(take, "small", 10)
        wait_for(lambda: budget.waiting == 2, timeout=10)
        assert not budget.try_acquire(10)  # room, but others wait first
        budget.release(60)
        large.result(timeout=10)
        assert granted == ["large"] and budget.held == 150
        budget.release(150)
        small.result(timeout=10)

    assert granted == ["large", "small"] and budget.held == 10 and budget.peak == 150
