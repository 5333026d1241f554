"""Sync storage rolls over: an object goes to the next bucket or directory once the current one holds
`max_objects` objects or `max_size` bytes, counting what earlier runs left there; when every entry is
full, the write fails naming the limits."""

import os
import uuid
from pathlib import Path

import pytest

from bpsync_dagster.configuration import PosixStorage, S3Storage, StorageSettings
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint

OBJECT_SIZE = 400
MAX_SIZE = 1000  # a bucket or directory is full from its third 400-byte object on


def put(storage: SyncStorage, key: str, data: bytes) -> str:
    """Write `key` where the storage places it; where that is."""
    placement = storage.place(key, len(data))
    staged = placement.stage(len(data))
    staged.write(data)
    staged.commit()
    return placement.describe()


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_s3_buckets_roll_over_by_size_across_runs(s3_server: S3Endpoint) -> None:
    prefix = f"size-{uuid.uuid4().hex[:8]}-"
    entry = S3Storage(
        endpoint=s3_server.endpoint_url,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        disable_https=True,
        bucket_prefix=prefix,
        max_buckets=3,
        max_size=MAX_SIZE,
    )
    bodies = {f"object-{number}.c4gh": os.urandom(OBJECT_SIZE) for number in range(9)}
    names = list(bodies)

    first_run = SyncStorage(StorageSettings("sync", s3=(entry,)))
    for name in names[:5]:
        put(first_run, name, bodies[name])
    next_run = SyncStorage(StorageSettings("sync", s3=(entry,)))
    for name in names[5:]:
        put(next_run, name, bodies[name])
    with pytest.raises(StorageError, match="^sync storage is full: no entry of storage.sync has room for late.c4gh"):
        put(next_run, "late.c4gh", b"late")

    client = s3_server.client()
    listed = {
        number: sorted(item["Key"] for item in client.list_objects_v2(Bucket=f"{prefix}{number}").get("Contents", []))
        for number in (1, 2, 3)
    }
    assert listed == {1: sorted(names[0:3]), 2: sorted(names[3:6]), 3: sorted(names[6:9])}
    assert all(client.get_object(Bucket=f"{prefix}3", Key=name)["Body"].read() == bodies[name] for name in names[6:])


def test_posix_directories_roll_over_by_count_then_size_and_keep_an_object_where_it_is(tmp_path: Path) -> None:
    by_count, by_size, unlimited = tmp_path / "by-count", tmp_path / "by-size", tmp_path / "unlimited"
    settings = StorageSettings(
        "sync",
        posix=(
            PosixStorage(by_count, max_objects=2),
            PosixStorage(by_size, max_size=MAX_SIZE),
            PosixStorage(unlimited),
        ),
    )
    for directory in (by_count, by_size, unlimited):
        directory.mkdir()
    storage = SyncStorage(settings)

    placed = [put(storage, f"user/object-{number}.c4gh", os.urandom(OBJECT_SIZE)) for number in range(7)]
    rewritten = put(SyncStorage(settings), "user/object-0.c4gh", b"again")

    expected = [by_count] * 2 + [by_size] * 3 + [unlimited] * 2
    assert placed == [str(root / f"user/object-{number}.c4gh") for number, root in enumerate(expected)]
    assert rewritten == placed[0] and Path(placed[0]).read_bytes() == b"again"
    assert [len(list(root.rglob("*.c4gh"))) for root in (by_count, by_size, unlimited)] == [2, 3, 2]


def test_a_full_posix_storage_fails_naming_the_limits(tmp_path: Path) -> None:
    storage = SyncStorage(StorageSettings("sync", posix=(PosixStorage(tmp_path, max_size=MAX_SIZE),)))
    for number in range(3):
        put(storage, f"object-{number}.c4gh", os.urandom(OBJECT_SIZE))

    with pytest.raises(StorageError) as refused:
        put(storage, "object-3.c4gh", b"x")

    assert str(refused.value) == (
        "sync storage is full: no entry of storage.sync has room for object-3.c4gh (max_objects, max_size, max_buckets)"
    )
    assert not (tmp_path / "object-3.c4gh").exists()
