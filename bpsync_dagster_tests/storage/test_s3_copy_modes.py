"""How bodies reach S3, against moto and Ceph's RADOS Gateway: an archived body in the same S3 service is
copied by the service after the first part (`UploadPartCopy`), still read and verified here before
the upload is completed; one elsewhere is streamed, and an object smaller than a part is sent in
parts as it is read."""

import hashlib
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.client import BaseClient

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage import ArchiveStorage, SyncStorage, copy_file
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.s3_sync import MIN_PART
from bpsync_dagster.storage.transfer import SERVER_SIDE, STREAMED
from bpsync_dagster_tests.support.environment import ARCHIVE_BUCKET
from bpsync_dagster_tests.support.s3_server import S3_SERVERS, S3Endpoint, s3_storage_entry, s3_sync_storage

MiB = 1024 * 1024
CHUNK = 5 * MiB
HEADER = b"crypt4gh header stand-in"


def s3_archive(server: S3Endpoint) -> ArchiveStorage:
    return ArchiveStorage(StorageSettings("archive", s3=(s3_storage_entry(server),)))


def archived_in_s3(server: S3Endpoint, body: bytes, sha256: str | None = None) -> FileRecord:
    """`body` put in the server's archive bucket, and its record (with `sha256` as its ARCHIVED checksum)."""
    name = f"bodies/{uuid.uuid4()}"
    server.client().put_object(Bucket=ARCHIVE_BUCKET, Key=name, Body=body)
    return record_of(f"{server.endpoint_url}/{ARCHIVE_BUCKET}", name, body, sha256)


def record_of(location: str, name: str, body: bytes, sha256: str | None = None) -> FileRecord:
    return FileRecord(
        accession_id=f"F-{name}",
        submission_user="user",
        submission_file_path=f"user/{name.rpartition('/')[2]}.c4gh",
        archive_location=location,
        archive_file_path=name,
        archive_file_size=len(body),
        header_hex=HEADER.hex(),
        unencrypted_sha256=None,
        archived_sha256=sha256 or hashlib.sha256(body).hexdigest(),
    )


def sync_on(server: S3Endpoint, chunk_size: int = CHUNK) -> tuple[SyncStorage, str]:
    prefix = f"modes-{uuid.uuid4().hex[:8]}-"
    return s3_sync_storage(server, prefix, chunk_size), f"{prefix}1"


def count_requests(storage: SyncStorage, key: str, operation: str) -> Callable[[], int]:
    """How many `operation` requests the sync storage's own client sent so far."""
    client: BaseClient = storage.place(key, 1)._location.client  # type: ignore[attr-defined]
    sent = 0

    def count(**_: object) -> None:
        nonlocal sent
        sent += 1

    client.meta.events.register(f"before-send.s3.{operation}", count)
    return lambda: sent


def nothing_left(server: S3Endpoint, bucket: str) -> bool:
    client = server.client()
    return "Contents" not in client.list_objects_v2(Bucket=bucket) and not client.list_multipart_uploads(
        Bucket=bucket
    ).get("Uploads")


@pytest.mark.parametrize("s3_server", [*S3_SERVERS, "radosgw-https"], indirect=True)
def test_a_body_in_the_same_service_is_copied_by_it_after_the_first_part(s3_server: S3Endpoint) -> None:
    body = os.urandom(4 * CHUNK + 12345)
    record = archived_in_s3(s3_server, body)
    sync, bucket = sync_on(s3_server)
    part_copies = count_requests(sync, record.submission_file_path, "UploadPartCopy")

    outcome = copy_file(record, HEADER, s3_archive(s3_server), sync, False)

    assert outcome.mode == SERVER_SIDE and outcome.verified and outcome.bytes_written == len(HEADER) + len(body)
    stored = s3_server.client().get_object(Bucket=bucket, Key=record.submission_file_path)
    assert stored["Body"].read() == HEADER + body
    parts = math.ceil((len(HEADER) + len(body)) / CHUNK)
    assert stored["ETag"].strip('"').endswith(f"-{parts}") and part_copies() == parts - 1
    assert sync.budget.held == 0


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_a_body_copied_by_the_service_that_is_not_the_archived_one_is_not_completed(s3_server: S3Endpoint) -> None:
    body = os.urandom(3 * CHUNK)
    record = archived_in_s3(s3_server, body, sha256=hashlib.sha256(b"another body").hexdigest())
    sync, bucket = sync_on(s3_server)
    part_copies = count_requests(sync, record.submission_file_path, "UploadPartCopy")

    with pytest.raises(StorageError, match="not the ARCHIVED checksum"):
        copy_file(record, HEADER, s3_archive(s3_server), sync, False)

    assert part_copies() >= 1
    assert nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_an_archived_body_replaced_during_a_server_side_copy_is_not_completed(s3_server: S3Endpoint) -> None:
    body = os.urandom(3 * CHUNK)
    record = archived_in_s3(s3_server, body)
    sync, bucket = sync_on(s3_server)
    client: BaseClient = sync.place(record.submission_file_path, 1)._location.client  # type: ignore[attr-defined]

    def replace_body(**_: object) -> None:
        s3_server.client().put_object(Bucket=ARCHIVE_BUCKET, Key=record.archive_file_path, Body=os.urandom(len(body)))

    # After the body was sized and found readable, before the upload starts.
    client.meta.events.register("before-send.s3.CreateMultipartUpload", replace_body)

    with pytest.raises(StorageError, match="PreconditionFailed|412"):
        copy_file(record, HEADER, s3_archive(s3_server), sync, False)

    assert nothing_left(s3_server, bucket)


def test_a_body_in_another_service_is_streamed(moto_s3: S3Endpoint, radosgw: S3Endpoint) -> None:
    body = os.urandom(3 * CHUNK)
    record = archived_in_s3(moto_s3, body)
    sync, bucket = sync_on(radosgw)
    part_copies = count_requests(sync, record.submission_file_path, "UploadPartCopy")

    outcome = copy_file(record, HEADER, s3_archive(moto_s3), sync, False)

    assert outcome.mode == STREAMED and part_copies() == 0
    stored = radosgw.client().get_object(Bucket=bucket, Key=record.submission_file_path)["Body"].read()
    assert stored == HEADER + body


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
@pytest.mark.parametrize(("size", "parts"), [(22 * MiB, 4), (MIN_PART + 1, 2), (MIN_PART - len(HEADER), 0)])
def test_an_object_smaller_than_a_chunk_is_sent_in_parts_as_it_is_read(
    tmp_path: Path, s3_server: S3Endpoint, size: int, parts: int
) -> None:
    body = os.urandom(size)
    (tmp_path / "body").write_bytes(body)
    record = record_of(str(tmp_path), "body", body)
    archive = ArchiveStorage(StorageSettings("archive", posix=(PosixStorage(tmp_path),)))
    sync, bucket = sync_on(s3_server, chunk_size=50 * MiB)

    outcome = copy_file(record, HEADER, archive, sync, False)

    stored = s3_server.client().get_object(Bucket=bucket, Key=record.submission_file_path)
    assert outcome.mode == STREAMED and stored["Body"].read() == HEADER + body
    etag = stored["ETag"].strip('"')
    assert etag.endswith(f"-{parts}") if parts else "-" not in etag
