"""`sync.copy.bandwidthLimit` holds: several files copied at once, from a real POSIX archive to real
POSIX and S3 sync storage (moto and radosgw), write at the cap within 10% over a copy of 5 to 8 s,
timed from its start to its last object complete."""

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from bpsync_dagster.configuration import CopySettings, PosixStorage, StorageSettings
from bpsync_dagster.storage import SyncStorage
from bpsync_dagster_tests.storage.test_copy_buffers import HEADER, MiB, archived_files, copy_all
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint, s3_sync_storage

SECONDS = 5
FILES = 4


def assert_rate_held(sync: SyncStorage, copy: Callable[[], None], total: int) -> float:
    started = time.monotonic()
    copy()
    elapsed = time.monotonic() - started
    rate = total / elapsed
    cap = sync.bandwidth.bytes_per_second
    assert sync.bandwidth.taken == total
    print(f"{total} bytes in {elapsed:.2f} s: {rate / cap:.3f} of the cap")
    assert 0.9 * cap <= rate <= 1.1 * cap, f"{rate / MiB:.2f} MiB/s with a cap of {cap / MiB:.2f} MiB/s"
    return rate


def test_posix_copies_write_at_the_cap(tmp_path: Path) -> None:
    cap = 8 * MiB
    (tmp_path / "archive").mkdir()
    archive, files = archived_files(tmp_path / "archive", count=FILES, size=cap * SECONDS // FILES)
    sync = SyncStorage(
        StorageSettings("sync", posix=(PosixStorage(tmp_path / "sync"),)), CopySettings().buffer_limit, cap
    )
    total = sum(len(HEADER) + len(body) for _, body in files)

    assert_rate_held(sync, lambda: copy_all(files, archive, sync), total)

    for record, body in files:
        assert (tmp_path / "sync" / record.submission_file_path).read_bytes() == HEADER + body


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_s3_copies_write_at_the_cap(tmp_path: Path, s3_server: S3Endpoint) -> None:
    cap = 4 * MiB
    # Two parts each (5 MiB and 3 MiB), the second sent as the object completes: after the last bytes
    # are let through, one part is still to send, which a longer copy makes a smaller share of its time.
    archive, files = archived_files(tmp_path, count=FILES, size=8 * MiB)
    prefix = f"bwlimit-{uuid.uuid4().hex[:8]}-"
    s3_server.client().create_bucket(Bucket=f"{prefix}1")  # made beforehand: not part of the copy
    sync = s3_sync_storage(s3_server, prefix, 5 * MiB, bandwidth_limit=cap)
    total = sum(len(HEADER) + len(body) for _, body in files)

    assert_rate_held(sync, lambda: copy_all(files, archive, sync), total)

    client = s3_server.client()
    for record, body in files:
        stored = client.get_object(Bucket=f"{prefix}1", Key=record.submission_file_path)["Body"].read()
        assert stored == HEADER + body
