"""POSIX to POSIX, a body larger than one hash window is copied in the kernel and hashed by a second
reader: the object is the header and the body, a body whose sha256 is not the ARCHIVED one, or whose
file is shorter or longer than its size (as when it changes after its size was taken), leaves
nothing behind, and across file systems (where `copy_file_range` cannot copy) the copy still holds."""

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage import ArchiveStorage, StorageError, SyncStorage, copy_file
from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX
from bpsync_dagster.storage.transfer import HASH_WINDOW_SIZE, READ_SIZE, _write, copies_in_kernel

HEADER = b"crypt4gh header stand-in"
# Several copy chunks and hash windows, and a tail shorter than either.
BODY_SIZE = 2 * READ_SIZE + HASH_WINDOW_SIZE + 12345


def archived(root: Path, body: bytes, sha256: str | None = None) -> tuple[ArchiveStorage, FileRecord]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "body").write_bytes(body)
    record = FileRecord(
        accession_id="F-1",
        submission_file_path="user/dir/file.c4gh",
        submission_user="user",
        archive_location=str(root),
        archive_file_path="body",
        archive_file_size=len(body),
        header_hex=HEADER.hex(),
        unencrypted_sha256=None,
        archived_sha256=sha256 or hashlib.sha256(body).hexdigest(),
    )
    return ArchiveStorage(StorageSettings("archive", posix=(PosixStorage(root),))), record


def sync_storage(root: Path) -> SyncStorage:
    return SyncStorage(StorageSettings("sync", posix=(PosixStorage(root),)))


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_a_large_body_is_copied_in_the_kernel_after_the_header(tmp_path: Path) -> None:
    body = os.urandom(BODY_SIZE)
    archive, record = archived(tmp_path / "archive", body)
    sync = sync_storage(tmp_path / "sync")
    assert copies_in_kernel(archive.body(record), sync.place(record.submission_file_path, 0), BODY_SIZE)

    outcome = copy_file(record, HEADER, archive, sync, False)

    assert outcome.verified and not outcome.skipped and outcome.bytes_written == len(HEADER) + BODY_SIZE
    assert (tmp_path / "sync" / record.submission_file_path).read_bytes() == HEADER + body
    assert sync.budget.peak == HASH_WINDOW_SIZE and sync.budget.held == 0


def test_a_body_whose_sha256_is_not_the_archived_one_leaves_nothing(tmp_path: Path) -> None:
    body = os.urandom(BODY_SIZE)
    wrong = hashlib.sha256(body[:-1] + bytes([body[-1] ^ 1])).hexdigest()
    archive, record = archived(tmp_path / "archive", body, sha256=wrong)
    sync = sync_storage(tmp_path / "sync")

    with pytest.raises(
        StorageError, match=f"has sha256 {hashlib.sha256(body).hexdigest()}, not the ARCHIVED checksum {wrong}"
    ):
        copy_file(record, HEADER, archive, sync, False)

    assert files_under(tmp_path / "sync") == []


def test_a_body_shorter_than_its_archive_file_size_fails_naming_it(tmp_path: Path) -> None:
    body = os.urandom(BODY_SIZE)
    archive, record = archived(tmp_path / "archive", body)
    (tmp_path / "archive" / "body").write_bytes(body[:-HASH_WINDOW_SIZE])
    sync = sync_storage(tmp_path / "sync")

    with pytest.raises(StorageError, match=f"body .*{tmp_path}/archive.*body is {BODY_SIZE - HASH_WINDOW_SIZE} bytes"):
        copy_file(record, HEADER, archive, sync, False)

    assert files_under(tmp_path / "sync") == []


@pytest.mark.parametrize("change", [-HASH_WINDOW_SIZE - 5, 7], ids=["shrank", "grew"])
def test_a_body_whose_file_changed_after_its_size_was_taken_leaves_nothing(tmp_path: Path, change: int) -> None:
    body = os.urandom(BODY_SIZE)
    archive, record = archived(tmp_path / "archive", body)
    sync = sync_storage(tmp_path / "sync")
    placement = sync.place(record.submission_file_path, len(HEADER) + BODY_SIZE)
    assert copies_in_kernel(archive.body(record), placement, BODY_SIZE)
    (tmp_path / "archive" / "body").write_bytes(os.urandom(BODY_SIZE + change))

    with pytest.raises(
        StorageError, match=f"read {BODY_SIZE + change} bytes of archived body .*body, expected {BODY_SIZE}"
    ):
        _write(placement, HEADER, archive.body(record), BODY_SIZE, record.archived_sha256, True, sync.bandwidth)

    assert files_under(tmp_path / "sync") == []


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_a_body_on_another_file_system_is_copied_too(tmp_path: Path) -> None:
    body = os.urandom(BODY_SIZE)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system as the test's directory")
        archive, record = archived(Path(other) / "archive", body)
        sync = sync_storage(tmp_path / "sync")

        copy_file(record, HEADER, archive, sync, False)

    assert (tmp_path / "sync" / record.submission_file_path).read_bytes() == HEADER + body
    assert not any(name.endswith(PARTIAL_SUFFIX) for name in files_under(tmp_path / "sync"))
