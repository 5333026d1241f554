"""The sync storage, write side: place objects by priority and roll-over, write them atomically.

An object becomes visible under its final name only when complete: POSIX writes a temporary file in
the same directory, fsyncs and renames it; S3 completes a multipart upload (or puts a small object)
only at the end and aborts it on failure.
"""

import base64
import errno
import hashlib
import math
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bpsync_dagster.configuration import CopySettings, PosixStorage, S3Storage, StorageSettings
from bpsync_dagster.storage.allocation import return_large_buffers_when_freed
from bpsync_dagster.storage.byte_budget import ByteBudget
from bpsync_dagster.storage.errors import StorageError, TransientStorageError
from bpsync_dagster.storage.s3_client import make_s3_client, s3_reachability
from bpsync_dagster.storage.s3_errors import s3_cause, s3_error

PARTIAL_SUFFIX = ".bpsync-partial"
NAME_MAX = 255
# Two dots and eight random characters besides the object's name and the suffix.
PARTIAL_OVERHEAD = 2 + 8 + len(PARTIAL_SUFFIX)
MAX_PARTS = 10_000
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
WRITE_BACK_BYTES = 64 * 1024 * 1024
PARTS_IN_FLIGHT = 2


class StagedObject(Protocol):
    """An object being written; invisible under its name until `commit`."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Placement(Protocol):
    """One object name in one sync location."""

    def describe(self) -> str: ...

    def size(self) -> int | None: ...

    def open(self) -> AbstractContextManager[BinaryIO]: ...

    def buffer_size(self, size: int) -> int:
        """The bytes a write of an object of `size` bytes holds in memory, besides what it is given."""
        ...

    def stage(self, size: int) -> StagedObject: ...


@dataclass
class _Usage:
    objects: int
    size: int


class _Location(Protocol):
    max_objects: int
    max_size: int

    def placement(self, key: str) -> Placement: ...

    def usage(self) -> _Usage: ...


class PosixStaged:
    """A temporary file in the object's directory (opened without following links), renamed over
    the final name by `commit`. Owns `directory`, a descriptor of that directory."""

    def __init__(self, directory: int, final_path: Path) -> None:
        self._directory = directory
        self._final_path = final_path
        self._temporary = f"{partial_prefix(final_path.name)}{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        descriptor = os.open(
            self._temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=directory,
        )
        self._file = os.fdopen(descriptor, "wb")
        self._written = 0
        self._flushed = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._written += len(data)
        if self._written - self._flushed >= WRITE_BACK_BYTES:
            # Start writing back what is written so far, so the final fsync has little left to do.
            self._file.flush()
            os.posix_fadvise(self._file.fileno(), self._flushed, self._written - self._flushed, os.POSIX_FADV_DONTNEED)
            self._flushed = self._written

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fchmod(self._file.fileno(), FILE_MODE)
            os.fsync(self._file.fileno())
            self._file.close()
            _refuse_link(self._directory, self._final_path)
            os.replace(self._temporary, self._final_path.name, src_dir_fd=self._directory, dst_dir_fd=self._directory)
            os.fsync(self._directory)
        except OSError as error:
            raise StorageError(f"cannot write {self._final_path}: {error.strerror}") from error
        os.close(self._directory)
        self._directory = -1

    def abort(self) -> None:
        self._file.close()
        if self._directory >= 0:
            try:
                os.unlink(self._temporary, dir_fd=self._directory)
            except FileNotFoundError:
                pass
            os.close(self._directory)
            self._directory = -1


def partial_prefix(name: str) -> str:
    """How the temporary files written for object `name` begin: `.<name>.`, with `name` shortened and
    followed by a digest of it where the whole temporary name would exceed NAME_MAX."""
    encoded = os.fsencode(name)
    if len(encoded) <= NAME_MAX - PARTIAL_OVERHEAD:
        return f".{name}."
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    kept = encoded[: NAME_MAX - PARTIAL_OVERHEAD - len(digest) - 1].decode("utf-8", "ignore")
    return f".{kept}~{digest}."


def _refuse_link(directory: int, path: Path) -> None:
    """Raise if `path`'s last component, in `directory`, is a symbolic link."""
    try:
        mode = os.stat(path.name, dir_fd=directory, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise StorageError(f"refusing to write {path}: it is a symbolic link in sync storage")


def _make_directories(directory: Path) -> None:
    """Create `directory` and its missing parents, each DIRECTORY_MODE whatever the umask."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            continue
        os.chmod(path, DIRECTORY_MODE)


def _open_directory(root: Path, directory: Path) -> int:
    """A descriptor of `directory` below `root`, made (DIRECTORY_MODE) where missing, reached one
    component at a time without following a symbolic link (which is refused, naming it)."""
    _make_directories(root)
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    reached = root
    try:
        for name in directory.relative_to(root).parts:
            reached = reached / name
            try:
                os.mkdir(name, DIRECTORY_MODE, dir_fd=descriptor)
                created = True
            except FileExistsError:
                created = False
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=descriptor)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    _refuse_link(descriptor, reached)
                raise
            os.close(descriptor)
            descriptor = child
            if created:
                os.fchmod(descriptor, DIRECTORY_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


class PosixPlacement:
    def __init__(self, location: "PosixLocation", key: str) -> None:
        self._location = location
        self.path = location.root / key

    def describe(self) -> str:
        return str(self.path)

    def size(self) -> int | None:
        try:
            status = self.path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(status.st_mode):
            raise StorageError(f"refusing to read {self.path}: it is a symbolic link in sync storage")
        return status.st_size

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as stream:
            yield stream

    def buffer_size(self, size: int) -> int:
        return 0

    def stage(self, size: int) -> StagedObject:
        try:
            directory = _open_directory(self._location.root, self.path.parent)
        except OSError as error:
            raise StorageError(f"cannot write {self.path}: {error.strerror}") from error
        try:
            _refuse_link(directory, self.path)
            for stale in self._location.stale_partials(directory, self.path):
                try:
                    os.unlink(stale, dir_fd=directory)
                except FileNotFoundError:
                    pass
            return PosixStaged(directory, self.path)
        except OSError as error:
            os.close(directory)
            raise StorageError(f"cannot write {self.path}: {error.strerror}") from error
        except BaseException:
            os.close(directory)
            raise


class PosixLocation:
    def __init__(self, entry: PosixStorage) -> None:
        self.root = entry.path
        self.max_objects = entry.max_objects
        self.max_size = entry.max_size
        self._partials: dict[Path, dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    def placement(self, key: str) -> Placement:
        return PosixPlacement(self, key)

    def stale_partials(self, directory: int, final_path: Path) -> list[str]:
        """Names of the temporary files an interrupted earlier write of `final_path` left in
        `directory` (its descriptor); each directory is listed once."""
        with self._lock:
            by_prefix = self._partials.get(final_path.parent)
            if by_prefix is None:
                by_prefix = self._partials[final_path.parent] = _partials_by_prefix(directory)
            return by_prefix.pop(partial_prefix(final_path.name), [])

    def usage(self) -> _Usage:
        usage = _Usage(0, 0)
        for directory, _subdirectories, files in os.walk(self.root):
            for name in files:
                if not name.endswith(PARTIAL_SUFFIX):
                    usage.objects += 1
                    usage.size += os.lstat(os.path.join(directory, name)).st_size
        return usage


def _partials_by_prefix(directory: int) -> dict[str, list[str]]:
    """`<partial_prefix(name)><random><PARTIAL_SUFFIX>` files of a directory, by their prefix."""
    partials: dict[str, list[str]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX):
                prefix = entry.name[: -len(PARTIAL_SUFFIX)].rpartition(".")[0] + "."
                partials.setdefault(prefix, []).append(entry.name)
    return partials


class S3Staged:
    """Writes fill a buffer of a part's size (or the object's, if smaller); each full buffer is sent as
    a part by a background thread while the next one fills, so reading and sending overlap. Parts in
    flight take slots from `part_slots`, shared by the uploads of one S3 entry: all uploads together
    have at most PARTS_IN_FLIGHT parts in flight, whatever the objects' sizes.

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
            self._sender = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        assert self._sender is not None
        self._collect(wait=False)
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
        for future in self._in_flight.values():
            future.cancel()
        self._in_flight.clear()
        self._stop_sender()
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

    def usage(self) -> _Usage:
        usage = _Usage(0, 0)
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


class SyncStorage:
    """The sync entries in priority order; S3 entries roll over across `<bucket_prefix>1..max_buckets`.

    `budget` bounds the bytes the copies through this object hold in buffers at once (see `copy_file`);
    freed buffers are returned to the system at once, so that the process's memory follows it."""

    def __init__(self, settings: StorageSettings, buffer_limit: int = CopySettings().buffer_limit) -> None:
        self.budget = ByteBudget(buffer_limit)
        return_large_buffers_when_freed()
        self._locations: list[_Location] = []
        self._usage: dict[int, _Usage] = {}
        self._lock = threading.Lock()
        self._clients: list[tuple[S3Storage, BaseClient]] = []
        for entry in settings.s3:
            if entry.writer_disabled:
                continue
            client = make_s3_client(entry)
            self._clients.append((entry, client))
            existing = _existing_buckets(client, entry)
            part_slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
            self._locations.extend(
                S3Location(
                    entry,
                    client,
                    f"{entry.bucket_prefix}{number}",
                    f"{entry.bucket_prefix}{number}" in existing,
                    part_slots,
                    self.budget,
                )
                for number in range(1, entry.max_buckets + 1)
            )
        self._locations.extend(PosixLocation(entry) for entry in settings.posix if not entry.writer_disabled)

    def find(self, key: str) -> Placement | None:
        """Where an object of that name already is, in any location."""
        for location in self._locations:
            placement = location.placement(key)
            if placement.size() is not None:
                return placement
        return None

    def place(self, key: str, size: int) -> Placement:
        """Where to write `key`: where it already is, else the first location that is not full."""
        if len(self._locations) == 1 and not (self._locations[0].max_objects or self._locations[0].max_size):
            return self._locations[0].placement(key)
        existing = self.find(key)
        if existing is not None:
            return existing
        with self._lock:
            for index, location in enumerate(self._locations):
                if not (location.max_objects or location.max_size):
                    return location.placement(key)
                usage = self._usage.get(index)
                if usage is None:
                    usage = self._usage[index] = location.usage()
                if location.max_objects and usage.objects >= location.max_objects:
                    continue
                if location.max_size and usage.size >= location.max_size:
                    continue
                usage.objects += 1
                usage.size += size
                return location.placement(key)
        raise StorageError(
            f"sync storage is full: no entry of storage.sync has room for {key} (max_objects, max_size, max_buckets)"
        )

    def check(self) -> list[tuple[str, str]]:
        """Each entry and `ok` or why it is not usable, for `bpsync check`."""
        results = [(f"sync s3 {entry.endpoint}", s3_reachability(client)) for entry, client in self._clients]
        results += [
            (
                f"sync posix {location.root}",
                "ok" if os.access(location.root, os.W_OK | os.X_OK) else "not a writable directory",
            )
            for location in self._locations
            if isinstance(location, PosixLocation)
        ]
        return results


def _existing_buckets(client: BaseClient, entry: S3Storage) -> set[str]:
    try:
        buckets = client.list_buckets().get("Buckets", [])
    except (ClientError, BotoCoreError) as error:
        raise s3_error(error, f"listing of buckets at {entry.endpoint}") from s3_cause(error)
    return {bucket["Name"] for bucket in buckets if bucket["Name"].startswith(entry.bucket_prefix)}
