"""Copy one file: the re-encrypted header followed by the archived body, copied and verified.

POSIX to POSIX, the body is copied in the kernel while a second reader hashes it; otherwise it is
streamed through the process, hashed on its way."""

import hashlib
import mmap
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage.archive import ArchivedBody, ArchiveStorage, PosixArchivedBody
from bpsync_dagster.storage.bandwidth_limit import BandwidthLimit
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.placement import Placement, StagedObject
from bpsync_dagster.storage.posix_sync import PosixPlacement, PosixStaged
from bpsync_dagster.storage.read_ahead import read_ahead
from bpsync_dagster.storage.s3_sync import copy_rest_server_side
from bpsync_dagster.storage.sync import SyncStorage

READ_SIZE = 8 * 1024 * 1024
READ_AHEAD_DEPTH = 2
# The chunks one copy holds at most: those read ahead, the one being read and the one being written.
CHUNKS_HELD = READ_AHEAD_DEPTH + 2
# What a copy in the kernel holds: the window of the source its hash maps at a time. Hashing mapped
# windows of 2 to 64 MiB ran at the same speed, 5-10% faster than 1 MiB reads (docs/benchmarks.md).
HASH_WINDOW_SIZE = 2 * 1024 * 1024
# To POSIX sync storage, files up to SMALL_FILE_BYTES are copied SMALL_FILES_IN_FLIGHT at once besides
# `parallel_files`: their time is spent in fsync, and the file system commits concurrent fsyncs together.
SMALL_FILE_BYTES = 1024 * 1024
SMALL_FILES_IN_FLIGHT = 32
# How the body reached the sync storage: through this process, or copied by S3 itself after the first
# part (read here all the same, to verify it).
STREAMED = "streamed"
SERVER_SIDE = "server-side"


@dataclass(frozen=True)
class CopyOutcome:
    """What happened to one file; shown per file in the run's metadata."""

    accession_id: str
    destination: str
    object_size: int
    bytes_written: int
    seconds: float
    skipped: bool
    verified: bool
    mode: str = STREAMED

    @property
    def megabytes_per_second(self) -> float:
        return self.bytes_written / 1024**2 / self.seconds if self.seconds > 0 else 0.0


def copy_file(
    record: FileRecord,
    header: bytes,
    archive: ArchiveStorage,
    sync: SyncStorage,
    reuse_existing: bool,
) -> CopyOutcome:
    """Write `header` + the archived body under `submission_file_path`, or reuse an identical object.

    The body is checked while it streams: its length must equal the archive object's size and
    `archive_file_size`, and its sha256 the `ARCHIVED` checksum when the database has them (the
    outcome's `verified` says whether it had one). The copy waits until `sync.budget` has room for
    its buffers (see `copies_in_kernel`), and holds them until it is done; each chunk written
    also waits for `sync.bandwidth`.
    """
    started = time.monotonic()
    body = archive.body(record)
    body_size = body.size()
    if record.archive_file_size is not None and body_size != record.archive_file_size:
        raise StorageError(
            f"archived body {body.describe()} is {body_size} bytes but sda.files.archive_file_size says {record.archive_file_size}"
        )
    total_size = len(header) + body_size
    key = record.submission_file_path
    if reuse_existing:
        existing = sync.find(key)
        if existing is not None and _holds(existing, header, total_size, record.archived_sha256):
            return CopyOutcome(
                record.accession_id,
                existing.describe(),
                total_size,
                0,
                time.monotonic() - started,
                skipped=True,
                verified=True,
            )
    placement = sync.place(key, total_size)
    in_kernel = copies_in_kernel(body, placement, body_size)
    if in_kernel:
        held = HASH_WINDOW_SIZE
    else:
        chunks = CHUNKS_HELD if body_size > READ_SIZE else 1
        held = chunks * min(READ_SIZE, body_size) + placement.buffer_size(total_size)
    with sync.budget.holding(held):
        mode = _write(placement, header, body, body_size, record.archived_sha256, in_kernel, sync.bandwidth)
    return CopyOutcome(
        record.accession_id,
        placement.describe(),
        total_size,
        total_size,
        time.monotonic() - started,
        skipped=False,
        verified=bool(record.archived_sha256),
        mode=mode,
    )


def small_files_in_flight(sync: SyncStorage) -> int:
    """How many files of at most SMALL_FILE_BYTES a copy step copies at once besides its
    `parallel_files`: SMALL_FILES_IN_FLIGHT when every sync location is POSIX, else none."""
    return SMALL_FILES_IN_FLIGHT if sync.posix_only else 0


def copies_in_kernel(body: ArchivedBody, placement: Placement, body_size: int) -> bool:
    """Whether the body is copied in the kernel, hashed by a second reader: a POSIX body larger
    than one hash window, to a POSIX object. Such a copy holds one hash window; any other
    streams the body through CHUNKS_HELD chunks (one for a body of one chunk, read without a
    read-ahead thread) and the placement's own buffer."""
    return (
        isinstance(body, PosixArchivedBody) and isinstance(placement, PosixPlacement) and body_size > HASH_WINDOW_SIZE
    )


def _write(
    placement: Placement,
    header: bytes,
    body: ArchivedBody,
    body_size: int,
    archived_sha256: str | None,
    in_kernel: bool,
    bandwidth: BandwidthLimit,
) -> str:
    """Stage `header` + the body, check the body's length and sha256, and commit; on any failure
    the staged object is removed; its mode (STREAMED or SERVER_SIDE). The loop over the copy's steps
    is where per-chunk work belongs."""
    staged = placement.stage(len(header) + body_size)
    try:
        bandwidth.take(len(header))
        staged.write(header)
        server_side_from = None if in_kernel else copy_rest_server_side(staged, body, len(header), body_size)
        with _body_copy(body, staged, body_size, in_kernel, server_side_from) as copy:
            copied = 0
            for count in copy:
                bandwidth.take(count)
                copied += count
            length, sha256 = copy.result()
        if copied != body_size or length != body_size:
            read = copied if copied != body_size else length
            raise StorageError(f"read {read} bytes of archived body {body.describe()}, expected {body_size}")
        if archived_sha256 and sha256 != archived_sha256.lower():
            raise StorageError(
                f"archived body {body.describe()} has sha256 {sha256}, not the ARCHIVED checksum {archived_sha256}"
            )
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return STREAMED if server_side_from is None else SERVER_SIDE


class _BodyCopy(Protocol):
    """Copies the body chunk by chunk, each step yielding the bytes it moved; `result` is the
    length and the sha256 (hex) of the body read."""

    def __iter__(self) -> Iterator[int]: ...

    def result(self) -> tuple[int, str]: ...

    def close(self) -> None: ...


@contextmanager
def _body_copy(
    body: ArchivedBody, staged: StagedObject, body_size: int, in_kernel: bool, written_until: int | None
) -> Iterator[_BodyCopy]:
    with body.open() as stream:
        copy: _BodyCopy
        if in_kernel and isinstance(staged, PosixStaged):
            copy = _KernelCopy(stream.fileno(), staged)
        else:
            copy = _StreamedCopy(stream, staged, body_size, written_until)
        try:
            yield copy
        finally:
            copy.close()


class _StreamedCopy:
    """Read, hashed and written in turn; a body larger than one chunk is read ahead by a thread.
    With `written_until`, only the body before that offset is written (S3 copies the rest itself),
    and the whole body is still read and hashed."""

    def __init__(self, stream: BinaryIO, staged: StagedObject, body_size: int, written_until: int | None) -> None:
        self._staged = staged
        self._written_until = body_size if written_until is None else written_until
        self._digest = hashlib.sha256()
        self._length = 0
        if body_size > READ_SIZE:
            self._chunks: Iterator[bytes] = read_ahead(stream, READ_SIZE, READ_AHEAD_DEPTH)
        else:
            self._chunks = iter(lambda: stream.read(READ_SIZE), b"")

    def __iter__(self) -> Iterator[int]:
        for chunk in self._chunks:
            self._digest.update(chunk)
            if self._length < self._written_until:
                self._staged.write(chunk[: self._written_until - self._length])
            self._length += len(chunk)
            yield len(chunk)

    def result(self) -> tuple[int, str]:
        return self._length, self._digest.hexdigest()

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class _KernelCopy:
    """Copied in the kernel (`copy_file_range`) chunk by chunk, while a thread of its own hashes the
    source from the page cache through mapped windows of HASH_WINDOW_SIZE, each unmapped once hashed
    (its pages count in the process's RSS while mapped; hashlib releases the GIL while it hashes one)."""

    def __init__(self, source: int, staged: PosixStaged) -> None:
        self._source = source
        self._staged = staged
        self._digest = hashlib.sha256()
        self._length = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        os.posix_fadvise(source, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        self._hasher = threading.Thread(target=self._hash, name="hash", daemon=True)
        self._hasher.start()

    def _hash(self) -> None:
        try:
            # Touching a mapped page past the end of the file kills the process (SIGBUS), so only what
            # the file holds at open is mapped; a file shorter or longer than the body's size ends with
            # another length, which `_write` refuses. (Archived bodies are written once, never truncated.)
            end = os.fstat(self._source).st_size
            while self._length < end and not self._stop.is_set():
                size = min(HASH_WINDOW_SIZE, end - self._length)
                with mmap.mmap(self._source, size, offset=self._length, access=mmap.ACCESS_READ) as window:
                    if hasattr(mmap, "MADV_SEQUENTIAL"):
                        window.madvise(mmap.MADV_SEQUENTIAL)
                    with memoryview(window) as view:
                        self._digest.update(view)
                self._length += size
        except BaseException as error:
            self._error = error

    def __iter__(self) -> Iterator[int]:
        offset = 0
        while count := self._staged.copy_from(self._source, offset, READ_SIZE):
            offset += count
            if self._error is not None:
                raise self._error
            yield count

    def result(self) -> tuple[int, str]:
        self._hasher.join()
        if self._error is not None:
            raise self._error
        return self._length, self._digest.hexdigest()

    def close(self) -> None:
        self._stop.set()
        self._hasher.join()


def _holds(placement: Placement, header: bytes, total_size: int, archived_sha256: str | None) -> bool:
    """Whether the object already is `header` + a body with the ARCHIVED checksum."""
    if archived_sha256 is None or placement.size() != total_size:
        return False
    with placement.open() as stream:
        if stream.read(len(header)) != header:
            return False
        return rest_sha256(stream)[0] == archived_sha256.lower()


def rest_sha256(stream: BinaryIO) -> tuple[str, int]:
    """The sha256 (hex) and the length of what is left to read of `stream`."""
    digest, length = hashlib.sha256(), 0
    while chunk := stream.read(READ_SIZE):
        digest.update(chunk)
        length += len(chunk)
    return digest.hexdigest(), length
