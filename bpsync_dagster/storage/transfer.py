"""Copy one file: the re-encrypted header followed by the archived body, streamed and verified."""

import hashlib
import time
from contextlib import closing
from dataclasses import dataclass
from typing import BinaryIO

from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage.archive import ArchivedBody, ArchiveStorage
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.placement import Placement
from bpsync_dagster.storage.read_ahead import read_ahead
from bpsync_dagster.storage.s3_sync import copy_rest_server_side
from bpsync_dagster.storage.sync import SyncStorage

READ_SIZE = 8 * 1024 * 1024
READ_AHEAD_DEPTH = 2
# The chunks one copy holds at most: those read ahead, the one being read and the one being written.
CHUNKS_HELD = READ_AHEAD_DEPTH + 2
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
    its read-ahead chunks and its write buffer, and holds them until it is done.
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
    with sync.budget.holding(CHUNKS_HELD * min(READ_SIZE, body_size) + placement.buffer_size(total_size)):
        mode = _write(placement, header, body, body_size, record.archived_sha256)
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


def _write(placement: Placement, header: bytes, body: ArchivedBody, body_size: int, archived_sha256: str | None) -> str:
    """Write and commit the object; its mode (STREAMED or SERVER_SIDE)."""
    staged = placement.stage(len(header) + body_size)
    try:
        staged.write(header)
        server_side_from = copy_rest_server_side(staged, body, len(header), body_size)
        copied, digest = 0, hashlib.sha256()
        with body.open() as stream, closing(read_ahead(stream, READ_SIZE, READ_AHEAD_DEPTH)) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                if server_side_from is None:
                    staged.write(chunk)
                elif copied < server_side_from:
                    staged.write(chunk[: server_side_from - copied])
                copied += len(chunk)
        if copied != body_size:
            raise StorageError(f"read {copied} bytes of archived body {body.describe()}, expected {body_size}")
        if archived_sha256 and digest.hexdigest() != archived_sha256.lower():
            raise StorageError(
                f"archived body {body.describe()} has sha256 {digest.hexdigest()}, not the ARCHIVED checksum {archived_sha256}"
            )
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return STREAMED if server_side_from is None else SERVER_SIDE


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
