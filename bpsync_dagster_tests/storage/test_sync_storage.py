"""The sync storage's write side: atomic objects, stale temporary files, S3 parts of bounded size, sent
while the next fills, a bounded number at a time."""

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.placement import StagedObject
from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX
from bpsync_dagster.storage.s3_sync import PARTS_IN_FLIGHT, PARTS_IN_FLIGHT_PER_UPLOAD
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint, s3_sync_storage
from bpsync_dagster_tests.support.staged_writes import write_all

MiB = 1024 * 1024


def posix_storage(root: Path) -> SyncStorage:
    return SyncStorage(StorageSettings("sync", posix=(PosixStorage(root),)))


def write(storage: SyncStorage, key: str, data: bytes, pieces: int = 1) -> str:
    placement = storage.place(key, len(data))
    staged = placement.stage(len(data))
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        staged.write(data[start : start + step])
    staged.commit()
    return placement.describe()


def test_a_posix_write_removes_the_stale_temporary_files_of_that_name_only(tmp_path: Path) -> None:
    directory = tmp_path / "user"
    directory.mkdir()
    mine = [directory / f".a.c4gh.{random}{PARTIAL_SUFFIX}" for random in ("k2j3h4g5", "zz_9x8w7")]
    other = directory / f".b.c4gh.q1w2e3r4{PARTIAL_SUFFIX}"
    for stale in (*mine, other):
        stale.write_bytes(b"left by a killed run")

    storage = posix_storage(tmp_path)
    write(storage, "user/a.c4gh", b"new object")
    write(storage, "user/c.c4gh", b"another")

    assert (directory / "a.c4gh").read_bytes() == b"new object"
    assert not any(path.exists() for path in mine)
    assert other.exists()
    assert (directory / "a.c4gh").stat().st_mode & 0o777 == 0o640


def test_a_posix_write_larger_than_the_write_back_step_lands_whole(tmp_path: Path) -> None:
    data = bytes(range(256)) * (300 * 1024)  # 75 MiB, in 8 writes

    destination = write(posix_storage(tmp_path), "big.c4gh", data, pieces=8)

    assert Path(destination).read_bytes() == data
    assert [path.name for path in tmp_path.iterdir()] == ["big.c4gh"]


@pytest.mark.parametrize("s3_server", [*S3_SERVERS, "radosgw-https"], indirect=True)
def test_s3_objects_smaller_than_a_part_are_one_put_and_larger_ones_parts_of_the_chunk_size(
    s3_server: S3Endpoint,
) -> None:
    prefix = f"parts-{uuid.uuid4().hex[:8]}-"  # the HTTP and HTTPS runs share one gateway
    storage = s3_sync_storage(s3_server, prefix, chunk_size=5 * MiB)
    exact = bytes(range(256)) * (5 * MiB // 256)
    larger = exact * 2 + b"tail"

    write(storage, "exact.c4gh", exact, pieces=3)
    write(storage, "larger.c4gh", larger, pieces=7)
    write(storage, "empty.c4gh", b"")

    client = s3_server.client()
    objects = {
        key: client.get_object(Bucket=f"{prefix}1", Key=key) for key in ("exact.c4gh", "larger.c4gh", "empty.c4gh")
    }
    assert objects["exact.c4gh"]["Body"].read() == exact
    assert objects["larger.c4gh"]["Body"].read() == larger
    assert objects["empty.c4gh"]["Body"].read() == b""
    assert "-" not in objects["exact.c4gh"]["ETag"]  # one PUT, not a multipart upload
    assert objects["larger.c4gh"]["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + 4 bytes
    assert client.list_multipart_uploads(Bucket=f"{prefix}1").get("Uploads", []) == []


def test_an_s3_upload_fills_the_next_part_while_parts_are_sent() -> None:
    chunk = 5 * MiB
    data = os.urandom((PARTS_IN_FLIGHT_PER_UPLOAD + 3) * chunk)
    pieces_written = 0

    def write_in_pieces(staged: StagedObject) -> None:
        nonlocal pieces_written
        for start in range(0, len(data), MiB):
            staged.write(data[start : start + MiB])
            pieces_written += 1
        staged.commit()

    with InterruptibleS3Server() as server:
        storage = s3_sync_storage(server, "overlap", chunk_size=chunk)
        gate = server.hold_upload_parts()
        staged = storage.place("user/overlap.c4gh", len(data)).stage(len(data))
        with ThreadPoolExecutor(max_workers=1) as writer:
            written = writer.submit(write_in_pieces, staged)
            parts_held = gate.wait_until_held(PARTS_IN_FLIGHT_PER_UPLOAD, timeout=60)
            time.sleep(0.5)  # time enough to fill the next part, and to send it were the bound not kept
            pieces_while_held, held = pieces_written, gate.held
            gate.open()
            written.result(timeout=120)

        stored = server.client().get_object(Bucket="overlap1", Key="user/overlap.c4gh")
        assert stored["Body"].read() == data
        assert stored["ETag"].strip('"').endswith(f"-{PARTS_IN_FLIGHT_PER_UPLOAD + 3}")
    assert parts_held and held == PARTS_IN_FLIGHT_PER_UPLOAD == 4
    # Parts 1 to 4 in flight, part 5 filled; the write that would start part 6 waits for a slot.
    assert pieces_while_held == (PARTS_IN_FLIGHT_PER_UPLOAD + 1) * chunk // MiB


def test_the_uploads_of_an_s3_entry_share_its_parts_in_flight() -> None:
    chunk = 5 * MiB
    uploads = PARTS_IN_FLIGHT // PARTS_IN_FLIGHT_PER_UPLOAD + 1  # more than the entry's parts in flight take
    objects = {f"user/{number}.c4gh": os.urandom(PARTS_IN_FLIGHT_PER_UPLOAD * chunk + 1) for number in range(uploads)}
    with InterruptibleS3Server() as server:
        storage = s3_sync_storage(server, "shared", chunk_size=chunk)
        gate = server.hold_upload_parts()
        with ThreadPoolExecutor(max_workers=len(objects)) as writers:
            written = [writers.submit(write, storage, key, data, pieces=20) for key, data in objects.items()]
            parts_held = gate.wait_until_held(PARTS_IN_FLIGHT, timeout=60)
            time.sleep(0.5)  # room for the other uploads' parts, were the slots not shared
            held = gate.held
            gate.open()
            for future in written:
                future.result(timeout=120)

        client = server.client()
        for key, data in objects.items():
            stored = client.get_object(Bucket="shared1", Key=key)
            assert stored["Body"].read() == data
            assert stored["ETag"].strip('"').endswith(f"-{PARTS_IN_FLIGHT_PER_UPLOAD + 1}")
        assert client.list_multipart_uploads(Bucket="shared1").get("Uploads", []) == []
    assert parts_held and held == PARTS_IN_FLIGHT


def test_a_refused_s3_part_aborts_the_upload_and_names_the_object() -> None:
    data = os.urandom(4 * 5 * MiB)
    with InterruptibleS3Server() as server:
        storage = s3_sync_storage(server, "refused", chunk_size=5 * MiB)
        server.refuse_upload_part(2)
        staged = storage.place("user/refused.c4gh", len(data)).stage(len(data))
        with pytest.raises(StorageError) as raised:
            write_all(staged, data)

        client = server.client()
        assert client.list_multipart_uploads(Bucket="refused1").get("Uploads", []) == []
        assert "Contents" not in client.list_objects_v2(Bucket="refused1")
    assert "upload part of s3://refused1/user/refused.c4gh" in str(raised.value)
    assert "AccessDenied" in str(raised.value) or "denied" in str(raised.value).lower()
