"""S3 sync writes against moto and Ceph's RADOS Gateway: a part damaged on its way is refused, and two
writers of one object do not corrupt each other's work silently."""

import os
import uuid
from collections.abc import Callable

import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.client import BaseClient

from bpsync_dagster.storage.errors import StorageError, TransientStorageError
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint, s3_sync_storage
from bpsync_dagster_tests.support.staged_writes import write_all

MiB = 1024 * 1024
CHUNK = 5 * MiB


def s3_storage(server: S3Endpoint, prefix: str) -> SyncStorage:
    return s3_sync_storage(server, prefix, CHUNK)


def unique_prefix(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}-"  # the servers live for the whole session


def client_of(storage: SyncStorage, key: str) -> BaseClient:
    """The service's own S3 client behind `storage`'s placement of `key`."""
    return storage.place(key, 1)._location.client  # type: ignore[attr-defined]


def damage_in_transit(client: BaseClient, operation: str) -> Callable[[], int]:
    """Flip the first byte of every `operation` body after the client has signed and hashed it, as a
    faulty network path would; returns how many bodies were damaged so far."""
    damaged = 0

    def damage(request: AWSPreparedRequest, **_: object) -> None:
        nonlocal damaged
        body = request.body
        if isinstance(body, (bytes, bytearray)) and body:
            request.body = bytes([body[0] ^ 0xFF]) + bytes(body[1:])
            damaged += 1

    client.meta.events.register(f"before-send.s3.{operation}", damage)
    return lambda: damaged


def open_uploads(server: S3Endpoint, bucket: str) -> list[str]:
    return [upload["Key"] for upload in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@pytest.mark.parametrize("s3_server", [*S3_SERVERS, "radosgw-https"], indirect=True)
@pytest.mark.parametrize(("operation", "size"), [("UploadPart", 3 * CHUNK), ("PutObject", MiB)])
def test_a_part_damaged_on_its_way_is_refused_and_nothing_is_stored(
    s3_server: S3Endpoint, operation: str, size: int
) -> None:
    prefix = unique_prefix("damaged")
    storage = s3_storage(s3_server, prefix)
    damaged = damage_in_transit(client_of(storage, "user/damaged.c4gh"), operation)
    data = os.urandom(size)

    with pytest.raises(StorageError) as raised:
        write_all(storage.place("user/damaged.c4gh", size).stage(size), data)

    message = str(raised.value)
    assert damaged() >= 1
    assert "s3://" + prefix + "1/user/damaged.c4gh" in message
    if s3_server.name == "moto":
        # moto stores what it receives; its ETag, the MD5 of the damaged body, gives it away.
        assert "not the MD5 of what was sent" in message and isinstance(raised.value, TransientStorageError)
    elif s3_server.name == "radosgw-https":
        # radosgw compares the body with its Content-MD5 first.
        assert "BadDigest" in message and isinstance(raised.value, TransientStorageError)
    else:
        # Over HTTP the client signs the body's SHA-256 too, and radosgw checks that first.
        assert "XAmzContentSHA256Mismatch" in message and isinstance(raised.value, TransientStorageError)
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=f"{prefix}1")
    assert open_uploads(s3_server, f"{prefix}1") == []


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_a_second_write_of_an_object_this_sync_is_writing_is_refused(s3_server: S3Endpoint) -> None:
    prefix = unique_prefix("twice")
    storage = s3_storage(s3_server, prefix)
    data = os.urandom(3 * CHUNK)
    first = storage.place("user/twice.c4gh", len(data)).stage(len(data))
    first.write(data[: 2 * CHUNK + 1])  # a part sent, the upload open

    with pytest.raises(StorageError) as raised:
        storage.place("user/twice.c4gh", len(data)).stage(len(data))
    first.write(data[2 * CHUNK + 1 :])
    first.commit()

    assert str(raised.value) == (
        f"refusing a second write of s3://{prefix}1/user/twice.c4gh while this sync is writing it already"
    )
    stored = s3_server.client().get_object(Bucket=f"{prefix}1", Key="user/twice.c4gh")["Body"].read()
    assert stored == data
    assert open_uploads(s3_server, f"{prefix}1") == []
    write_all(storage.place("user/twice.c4gh", 5).stage(5), b"again")  # the name is free once written


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_a_writer_whose_upload_another_process_aborted_fails_to_be_retried_naming_the_cause(
    s3_server: S3Endpoint,
) -> None:
    prefix = unique_prefix("rival")
    mine, theirs = os.urandom(3 * CHUNK), os.urandom(2 * CHUNK + 7)
    first = s3_storage(s3_server, prefix).place("user/rival.c4gh", len(mine)).stage(len(mine))
    first.write(mine[: 2 * CHUNK + 1])  # parts sent, the upload open

    second = s3_storage(s3_server, prefix)  # another process: the first's upload looks left behind
    write_all(second.place("user/rival.c4gh", len(theirs)).stage(len(theirs)), theirs)
    with pytest.raises(TransientStorageError) as raised:
        write_all(first, mine[2 * CHUNK + 1 :])

    assert f"s3://{prefix}1/user/rival.c4gh" in str(raised.value)
    assert "aborted meanwhile, by another writer of the same object or a clean-up" in str(raised.value)
    stored = s3_server.client().get_object(Bucket=f"{prefix}1", Key="user/rival.c4gh")["Body"].read()
    assert stored == theirs
    assert open_uploads(s3_server, f"{prefix}1") == []
