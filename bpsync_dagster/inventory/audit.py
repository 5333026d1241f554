"""Does sync storage still hold what the SDA database says a dataset holds?

For every file the object must exist under its `submission_file_path`, be as long as its
re-encrypted header plus its archived body, and (when asked, since it reads every byte) its body
must have the `ARCHIVED` checksum.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from bpsync_dagster.c4gh import NodeKeys, reencrypt_header
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage import SyncStorage
from bpsync_dagster.storage.transfer import rest_sha256


@dataclass(frozen=True)
class FileProblem:
    accession_id: str
    path: str
    problem: str

    def describe(self) -> str:
        """The file and its problem, escaped: IDs and paths are read from the database."""
        return escaped(f"{self.accession_id} ({self.path}): {self.problem}")


@dataclass(frozen=True)
class DatasetAudit:
    """One dataset's audit: its files' problems, and whether a sync of it was ever recorded."""

    dataset_id: str
    files: int
    problems: tuple[FileProblem, ...]
    synced_before: bool
    bytes_read: int = 0

    @property
    def in_sync(self) -> bool:
        return self.synced_before and not self.problems

    @property
    def drifted(self) -> bool:
        """Synced once, but sync storage no longer matches."""
        return self.synced_before and bool(self.problems)

    def summary(self) -> str:
        if self.in_sync:
            return f"dataset {self.dataset_id}: all {self.files} files in sync storage as recorded"
        parts = [] if self.synced_before else ["never synced"]
        if self.problems:
            parts.append(
                f"{len(self.problems)} of {self.files} files wrong: "
                + "; ".join(problem.describe() for problem in self.problems[:10])
            )
        return f"dataset {self.dataset_id}: " + "; ".join(parts)


def audit_dataset(
    dataset_id: str,
    records: Sequence[FileRecord],
    keys: NodeKeys,
    storage: SyncStorage,
    synced_before: bool,
    verify_checksums: bool,
) -> DatasetAudit:
    problems: list[FileProblem] = []
    bytes_read = 0
    for record in records:
        problem, read = _inspect(record, keys, storage, verify_checksums)
        bytes_read += read
        if problem is not None:
            problems.append(FileProblem(record.accession_id, record.submission_file_path, problem))
    return DatasetAudit(dataset_id, len(records), tuple(problems), synced_before, bytes_read)


def _inspect(
    record: FileRecord, keys: NodeKeys, storage: SyncStorage, verify_checksums: bool
) -> tuple[str | None, int]:
    """What is wrong with the file's object (None if nothing), and how many bytes were read."""
    try:
        header = reencrypt_header(bytes.fromhex(record.header_hex), keys.secret_key, keys.receiver_public_key)
    except Exception as error:
        return f"its header cannot be re-encrypted: {error}", 0
    placement = storage.find(record.submission_file_path)
    if placement is None:
        return "missing from sync storage", 0
    size = placement.size()
    if record.archive_file_size is not None and size != len(header) + record.archive_file_size:
        expected = len(header) + record.archive_file_size
        return (
            f"{placement.describe()} is {size} bytes, expected {expected} "
            f"(header {len(header)} + archived body {record.archive_file_size})"
        ), 0
    if not verify_checksums or not record.archived_sha256:
        return None, 0
    with placement.open() as stream:
        stream.read(len(header))
        body_sha256, read = rest_sha256(stream)
    if body_sha256 != record.archived_sha256.lower():
        return f"{placement.describe()}: body sha256 {body_sha256} is not the ARCHIVED checksum", read
    return None, read
