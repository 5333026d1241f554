"""S3 sync locations: objects sent as multipart uploads (parts checked by Content-MD5) completed only
at the end, or as one PUT when small; one writer per object name within a sync. When the archived
body is in the same S3 service and the sync's credentials can read it, the body beyond the first
part is copied by the service itself (`UploadPartCopy`)."""

import base64
import hashlib
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bpsync_dagster.configuration import S3Storage
from bpsync_dagster.storage.archive import ArchivedBody, S3ArchivedBody
from bpsync_dagster.storage.byte_budget import ByteBudget
from bpsync_dagster.storage.errors import StorageError, TransientStorageError
from bpsync_dagster.storage.placement import Placement, StagedObject, Usage
from bpsync_dagster.storage.s3_errors import s3_cause, s3_error

MAX_PARTS = 10_000
MIN_PART = 5 * 1024 * 1024  # S3's smallest part, the last one excepted
# Parts one upload sends at once (as rclone's default), and all uploads to one S3 entry (its client's
# connection pool); the buffers of parts in flight are bounded by the byte budget besides.
PARTS_IN_FLIGHT_PER_UPLOAD = 4
PARTS_IN_FLIGHT = 16


class S3Staged:
    """Writes fill a buffer of a part's size (or the object's, if smaller); each full buffer is sent as
    a part by a background thread while the next one fills, so reading and sending overlap. An upload
    has at most PARTS_IN_FLIGHT_PER_UPLOAD parts in flight, and takes slots from `part_slots`, shared
    by the uploads of one S3 entry: all uploads together send at most PARTS_IN_FLIGHT parts at once
    (parts S3 copies itself, see `copy_rest_server_side`, hold no buffer and take no slot).

    The caller holds one buffer's bytes of `budget` for the upload. A further buffer, to fill while
    parts are in flight, is taken from `budget` only if it has room at once; otherwise the upload
    waits for its oldest part to be sent and fills that part's buffer again. Every part and a small
    object carry their Content-MD5, so a body damaged on its way is refused by S3, and the ETag S3
    answers must be that MD5."""

    def __init__(
        self,
        location: "S3Location",
        key: str,
        part_size: int,
        size: int,
        budget: ByteBudget,
        done: Callable[[], None],
    ) -> None:
        self._client = location.client
        self._endpoint_url = location.entry.endpoint_url
        self._bucket = location.bucket
        self._key = key
        self._buffer = bytearray(max(1, min(part_size, size)))
        self._filled = 0
        self._part_slots = location.part_slots
        self._budget = budget
        self._extra_buffers = 0
        self._done = done
        self._upload_id: str | None = None
        self._sender: ThreadPoolExecutor | None = None
        self._in_flight: dict[int, Future[str]] = {}
        self._etags: dict[int, str] = {}
        self._copier: ThreadPoolExecutor | None = None
        self._copies: dict[int, Future[str]] = {}

    def describe(self) -> str:
        return f"s3://{self._bucket}/{self._key}"

    def _call(self, action: str, method: str, **arguments: object) -> dict:
        try:
            return getattr(self._client, method)(Bucket=self._bucket, Key=self._key, **arguments)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code"))
            if code == "NoSuchUpload" or (method != "create_multipart_upload" and self._upload_gone()):
                raise TransientStorageError(
                    f"{action} {self.describe()}: the upload was aborted meanwhile, by another writer of the "
                    f"same object or a clean-up (S3 answered {code})"
                ) from error
            raise s3_error(error, f"{action} {self.describe()}") from s3_cause(error)
        except BotoCoreError as error:
            raise s3_error(error, f"{action} {self.describe()}") from s3_cause(error)

    def _upload_gone(self) -> bool:
        """Whether this object's multipart upload is no longer open (some servers answer a part of an
        aborted upload with a 500, not NoSuchUpload)."""
        if self._upload_id is None:
            return False
        try:
            uploads = self._client.list_multipart_uploads(Bucket=self._bucket, Prefix=self._key).get("Uploads", [])
        except (ClientError, BotoCoreError):
            return False
        return all(upload["UploadId"] != self._upload_id for upload in uploads)

    def _send_checked(self, action: str, method: str, data: bytes | bytearray, **arguments: object) -> str:
        """Send `data` with its Content-MD5; the ETag S3 answers, which must be that MD5 unless the
        server encrypts with KMS or a customer key (its ETag is then no MD5)."""
        digest = hashlib.md5(data, usedforsecurity=False)
        response = self._call(
            action, method, Body=data, ContentMD5=base64.b64encode(digest.digest()).decode(), **arguments
        )
        etag = str(response["ETag"])
        etag_is_md5 = response.get("ServerSideEncryption", "AES256") == "AES256" and not response.get(
            "SSECustomerAlgorithm"
        )
        if etag_is_md5 and etag.strip('"').lower() != digest.hexdigest():
            if method == "put_object":
                # A single PUT is visible at once: take the damaged object away again.
                self._call("removal of damaged", "delete_object")
            raise TransientStorageError(
                f"{action} {self.describe()}: S3 answered ETag {etag}, not the MD5 of what was sent"
            )
        return etag

    def _upload_part(self, number: int, data: bytearray) -> str:
        return self._send_checked("upload part of", "upload_part", data, UploadId=self._upload_id, PartNumber=number)

    def _send_part(self, data: bytearray) -> None:
        """Start sending `data` as the next part once a slot is free; a part that failed raises here."""
        if self._upload_id is None:
            self._upload_id = self._call("start upload of", "create_multipart_upload")["UploadId"]
            self._sender = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT_PER_UPLOAD, thread_name_prefix="s3-part")
        assert self._sender is not None
        self._collect(wait=False)
        while len(self._in_flight) >= PARTS_IN_FLIGHT_PER_UPLOAD:
            self._collect(wait=False, oldest_only=True)
        number = len(self._etags) + len(self._in_flight) + 1
        self._part_slots.acquire()
        try:
            future = self._sender.submit(self._upload_part, number, data)
        except BaseException:
            self._part_slots.release()
            raise
        future.add_done_callback(lambda _: self._part_slots.release())
        self._in_flight[number] = future

    def _collect(self, wait: bool, oldest_only: bool = False) -> None:
        """Take in the ETags of the parts that are done (of all, if `wait`; of the oldest, if
        `oldest_only`); a failed part raises. Buffers beyond those still in use go back to the budget."""
        for number, future in sorted(self._in_flight.items()):
            if wait or oldest_only or future.done():
                del self._in_flight[number]
                self._etags[number] = future.result()
                oldest_only = False
        while self._extra_buffers > len(self._in_flight):
            self._extra_buffers -= 1
            self._budget.release(len(self._buffer))

    def _next_buffer(self) -> None:
        """A buffer for the part after the one just sent: a new one if the budget has room, else
        that of this upload's oldest part in flight, once it is sent."""
        if len(self._in_flight) > self._extra_buffers:
            if self._budget.try_acquire(len(self._buffer)):
                self._extra_buffers += 1
            else:
                self._collect(wait=False, oldest_only=True)
        self._buffer, self._filled = bytearray(len(self._buffer)), 0

    def write(self, data: bytes) -> None:
        view, capacity = memoryview(data), len(self._buffer)
        while view:
            # A full buffer is sent only once more data comes: the last part goes with `commit`.
            if self._filled == capacity:
                self._send_part(self._buffer)
                self._next_buffer()
            taken = min(capacity - self._filled, len(view))
            self._buffer[self._filled : self._filled + taken] = view[:taken]
            self._filled += taken
            view = view[taken:]

    def commit(self) -> None:
        try:
            rest = self._buffer if self._filled == len(self._buffer) else self._buffer[: self._filled]
            if self._upload_id is None:
                self._send_checked("put", "put_object", rest)
                return
            if rest:
                self._send_part(rest)
            self._collect(wait=True)
            self._stop_sender()
            for number, future in sorted(self._copies.items()):
                self._etags[number] = future.result()
            self._stop_copier()
            parts = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(self._etags.items())]
            self._call(
                "complete upload of",
                "complete_multipart_upload",
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        finally:
            self._finish()

    def abort(self) -> None:
        self._filled = 0
        for future in [*self._in_flight.values(), *self._copies.values()]:
            future.cancel()
        self._in_flight.clear()
        self._stop_sender()
        self._stop_copier()
        self._finish()
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            except (ClientError, BotoCoreError):
                pass

    def _finish(self) -> None:
        """Give back the extra buffers (once no part is in flight) and the object's name."""
        if self._in_flight:
            return
        self._budget.release(self._extra_buffers * len(self._buffer))
        self._extra_buffers = 0
        self._done()

    def _stop_sender(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None

    def _stop_copier(self) -> None:
        if self._copier is not None:
            self._copier.shutdown(wait=True)
            self._copier = None
        self._copies.clear()

    def copy_rest_server_side(self, source: S3ArchivedBody, header_size: int, body_size: int) -> int | None:
        """Have S3 copy the body beyond the first part from `source` (`UploadPartCopy`, the version
        `source` was sized as), if it is in this service and these credentials can read it; the body
        offset from which it does, or None (nothing started: write the whole body).

        The caller writes the header and the body up to that offset, which fill the first part
        exactly, and reads the whole body to verify it before `commit`, which waits for the copies.
        """
        part_size = len(self._buffer)
        start = part_size - header_size
        if start <= 0 or body_size <= start or self._upload_id is not None or not self._can_copy_from(source):
            return None
        self._upload_id = self._call("start upload of", "create_multipart_upload")["UploadId"]
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        self._copier = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT_PER_UPLOAD, thread_name_prefix="s3-copy")
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        for number, first in enumerate(range(start, body_size, part_size), start=2):
            last = min(first + part_size, body_size) - 1
            self._copies[number] = self._copier.submit(
                self._copy_part, number, copy_source, f"bytes={first}-{last}", str(source.etag)
            )
        return start

    def _can_copy_from(self, source: S3ArchivedBody) -> bool:
        """Whether `source` is in this S3 service, and these credentials read it as the version sized."""
        if source.etag is None or _normalise(source.endpoint_url) != _normalise(self._endpoint_url):
            return False
        try:
            found = self._client.head_object(Bucket=source.bucket, Key=source.key)
        except (ClientError, BotoCoreError):
            return False
        return str(found.get("ETag")) == source.etag

    def _copy_part(self, number: int, copy_source: dict[str, str], byte_range: str, etag: str) -> str:
        response = self._call(
            "server-side copy of a part of",
            "upload_part_copy",
            UploadId=self._upload_id,
            PartNumber=number,
            CopySource=copy_source,
            CopySourceRange=byte_range,
            CopySourceIfMatch=etag,
        )
        return str(response["CopyPartResult"]["ETag"])


class S3Placement:
    def __init__(self, location: "S3Location", key: str) -> None:
        self._location = location
        self.key = key

    def describe(self) -> str:
        return f"s3://{self._location.bucket}/{self.key}"

    def size(self) -> int | None:
        client = self._location.client
        try:
            return int(client.head_object(Bucket=self._location.bucket, Key=self.key)["ContentLength"])
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return None
            raise s3_error(error, f"look-up of {self.describe()}") from s3_cause(error)
        except BotoCoreError as error:
            raise s3_error(error, f"look-up of {self.describe()}") from s3_cause(error)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        try:
            body = self._location.client.get_object(Bucket=self._location.bucket, Key=self.key)["Body"]
        except (ClientError, BotoCoreError) as error:
            raise s3_error(error, f"read of {self.describe()}") from s3_cause(error)
        try:
            yield body
        finally:
            body.close()

    def buffer_size(self, size: int) -> int:
        return max(1, min(self._location.part_size(size), size))

    def stage(self, size: int) -> StagedObject:
        location = self._location
        location.ensure_bucket()
        location.start_writing(self.key)
        try:
            location.abort_stale_uploads(self.key)
            return S3Staged(
                location,
                self.key,
                location.part_size(size),
                size,
                location.budget,
                lambda: location.stop_writing(self.key),
            )
        except BaseException:
            location.stop_writing(self.key)
            raise


class S3Location:
    def __init__(
        self,
        entry: S3Storage,
        client: BaseClient,
        bucket: str,
        exists: bool,
        part_slots: threading.Semaphore,
        budget: ByteBudget,
    ) -> None:
        self.entry = entry
        self.client = client
        self.part_slots = part_slots
        self.budget = budget
        self.bucket = bucket
        self.max_objects = entry.max_objects
        self.max_size = entry.max_size
        self._exists = exists
        self._lock = threading.Lock()
        self._open_uploads: dict[str, list[str]] | None = None
        self._writing: set[str] = set()

    def placement(self, key: str) -> Placement:
        return S3Placement(self, key)

    def part_size(self, size: int) -> int:
        """`chunk_size`, or larger if the object needs it; for an object smaller than a chunk, a quarter
        of it (MIN_PART at least), so that its parts go out while the next are read, as for larger
        objects (an object of MIN_PART or less is one PUT)."""
        if MIN_PART < self.entry.chunk_size and size < self.entry.chunk_size:
            return max(MIN_PART, math.ceil(size / PARTS_IN_FLIGHT_PER_UPLOAD))
        return max(self.entry.chunk_size, math.ceil(size / (MAX_PARTS - 1)))

    def start_writing(self, key: str) -> None:
        """Claim `key` for one write: a second write of it while the first goes on would abort the
        first's upload, so it is refused."""
        with self._lock:
            if key in self._writing:
                raise StorageError(
                    f"refusing a second write of s3://{self.bucket}/{key} while this sync is writing it already"
                )
            self._writing.add(key)

    def stop_writing(self, key: str) -> None:
        with self._lock:
            self._writing.discard(key)

    def abort_stale_uploads(self, key: str) -> None:
        """Abort the multipart uploads of `key` that an interrupted earlier write left open (its process
        was killed, or S3 was down when it tried to abort), as POSIX removes stale partial files. The
        bucket's open uploads are listed once."""
        with self._lock:
            if self._open_uploads is None:
                self._open_uploads = self._list_open_uploads()
            stale = self._open_uploads.pop(key, [])
        for upload_id in stale:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except (ClientError, BotoCoreError) as error:
                raise s3_error(error, f"clean-up of an earlier upload of s3://{self.bucket}/{key}") from s3_cause(error)

    def _list_open_uploads(self) -> dict[str, list[str]]:
        uploads: dict[str, list[str]] = {}
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket):
                for upload in page.get("Uploads", []):
                    uploads.setdefault(upload["Key"], []).append(upload["UploadId"])
        except (ClientError, BotoCoreError) as error:
            raise s3_error(error, f"listing of open uploads in bucket {self.bucket}") from s3_cause(error)
        return uploads

    def ensure_bucket(self) -> None:
        with self._lock:
            if self._exists:
                return
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise s3_error(error, f"creation of bucket {self.bucket}") from s3_cause(error)
            except BotoCoreError as error:
                raise s3_error(error, f"creation of bucket {self.bucket}") from s3_cause(error)
            self._exists = True

    def usage(self) -> Usage:
        usage = Usage(0, 0)
        if not self._exists:
            return usage
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    usage.objects += 1
                    usage.size += int(item["Size"])
        except (ClientError, BotoCoreError) as error:
            raise s3_error(error, f"listing of bucket {self.bucket}") from s3_cause(error)
        return usage


def _normalise(endpoint_url: str) -> str:
    return endpoint_url.rstrip("/").lower()


def existing_buckets(client: BaseClient, entry: S3Storage) -> set[str]:
    try:
        buckets = client.list_buckets().get("Buckets", [])
    except (ClientError, BotoCoreError) as error:
        raise s3_error(error, f"listing of buckets at {entry.endpoint}") from s3_cause(error)
    return {bucket["Name"] for bucket in buckets if bucket["Name"].startswith(entry.bucket_prefix)}


def copy_rest_server_side(staged: StagedObject, body: ArchivedBody, header_size: int, body_size: int) -> int | None:
    """For an upload to S3 of an archived body in S3: `S3Staged.copy_rest_server_side`; else None."""
    if isinstance(staged, S3Staged) and isinstance(body, S3ArchivedBody):
        return staged.copy_rest_server_side(body, header_size, body_size)
    return None
