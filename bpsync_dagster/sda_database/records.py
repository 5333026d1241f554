"""File records of the SDA database and the checks a record must pass before it is synced."""

import re
import unicodedata
from dataclasses import dataclass

from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.errors import SyncError

SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255


class RecordError(SyncError):
    """A file record that cannot be synced; the message names the dataset, file and cause."""


@dataclass(frozen=True)
class FileRecord:
    """What the SDA database says about one archived file (no secrets)."""

    accession_id: str
    submission_user: str
    submission_file_path: str
    archive_location: str
    archive_file_path: str
    archive_file_size: int | None
    header_hex: str
    unencrypted_sha256: str | None
    archived_sha256: str | None
    dataset_keys: tuple[str, ...] = ()
    datasets: tuple[str, ...] | None = None

    def describe(self) -> str:
        """The accession ID and the path, escaped: both are read from the database."""
        return f"{escaped(self.accession_id)} ({self.submission_file_path!r})"


def destination_problem(path: str) -> str | None:
    """Why `path` cannot be an object name in sync storage, or None when it can."""
    if not path:
        return "submission_file_path is empty"
    if path.startswith("/"):
        return "submission_file_path is absolute"
    parts = path.split("/")
    if ".." in parts:
        return "submission_file_path contains '..'"
    if any(part in ("", ".") for part in parts):
        return "submission_file_path has an empty or '.' component"
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "submission_file_path contains control characters"
    if "\\" in path:
        return "submission_file_path contains a backslash"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "submission_file_path is not valid UTF-8"
    if len(encoded) > MAX_KEY_BYTES:
        return f"submission_file_path is longer than {MAX_KEY_BYTES} bytes"
    if any(len(part.encode()) > MAX_NAME_BYTES for part in parts):
        return f"submission_file_path has a component longer than {MAX_NAME_BYTES} bytes"
    return None


def record_problems(record: FileRecord, dataset_id: str) -> list[str]:
    """Every reason the record cannot be synced as part of `dataset_id`."""
    problems = []
    path_problem = destination_problem(record.submission_file_path)
    if path_problem:
        problems.append(path_problem)
    if record.datasets and dataset_id not in record.datasets:
        problems.append(f"the file belongs to dataset {', '.join(record.datasets)}, not {dataset_id}")
    if not record.header_hex:
        problems.append("the file has no header")
    else:
        try:
            bytes.fromhex(record.header_hex)
        except ValueError:
            problems.append("the header is not valid hex")
    if not record.archive_location or not record.archive_file_path:
        problems.append("the file has no archive location or path")
    if not record.unencrypted_sha256:
        problems.append("the file has no SHA256 UNENCRYPTED checksum")
    elif not SHA256_HEX.fullmatch(record.unencrypted_sha256):
        problems.append("the SHA256 UNENCRYPTED checksum is not 64 hex digits")
    if record.archived_sha256 and not SHA256_HEX.fullmatch(record.archived_sha256):
        problems.append("the SHA256 ARCHIVED checksum is not 64 hex digits")
    if not record.submission_user:
        problems.append("the file has no submission_user")
    return problems


def check_records(dataset_id: str, requested: list[str], records: list[FileRecord]) -> None:
    """Raise `RecordError` naming every accession ID that is unknown or cannot be synced."""
    found = {record.accession_id for record in records}
    missing = [accession for accession in requested if accession not in found]
    problems = [f"{accession}: not in sda.files" for accession in missing]
    for record in records:
        problems.extend(f"{record.describe()}: {problem}" for problem in record_problems(record, dataset_id))
    problems.extend(_shared_destinations(records))
    problems.extend(_mixed_datasets(records))
    if problems:
        shown = "; ".join(problems[:10])
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise RecordError(f"dataset {dataset_id}: {shown}{more}")


def _shared_destinations(records: list[FileRecord]) -> list[str]:
    """Files of one dataset with the same `submission_file_path` would be written to one object, the
    last copy overwriting the others while the manifest lists them all."""
    by_path: dict[str, list[str]] = {}
    for record in records:
        by_path.setdefault(record.submission_file_path, []).append(record.accession_id)
    return [
        f"{', '.join(accessions[:-1])} and {accessions[-1]} have the same submission_file_path {path!r}: they would be one object in sync storage"
        for path, accessions in by_path.items()
        if len(accessions) > 1
    ]


def _mixed_datasets(records: list[FileRecord]) -> list[str]:
    """Where dataset names are not readable, files mapped to no common dataset in `file_dataset` still
    cannot be one dataset."""
    mapped = [record for record in records if record.datasets is None and record.dataset_keys]
    if len(mapped) < 2 or set.intersection(*(set(record.dataset_keys) for record in mapped)):
        return []
    first = mapped[0]
    other = next(record for record in mapped if not set(record.dataset_keys) & set(first.dataset_keys))
    return [f"{first.accession_id} and {other.accession_id} are mapped to different datasets in sda.file_dataset"]
