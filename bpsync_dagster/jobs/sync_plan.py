"""What a sync of a dataset would do with each file, found with the checks of `sync_dataset` and
reads only: nothing is written to sync storage, nothing posted, no run recorded (`bpsync sync --dry-run`)."""

from collections import Counter
from dataclasses import dataclass

from bpsync_dagster.c4gh import NodeKeys, reencrypt_header
from bpsync_dagster.errors import SyncError
from bpsync_dagster.remote_api import build_manifest, validate_manifest
from bpsync_dagster.sda_database import FileRecord, SdaDatabase, check_records, record_problems
from bpsync_dagster.storage import ArchiveStorage, SyncStorage

COPY = "copy"
REPLACE = "replace"
REFUSE = "refuse"


@dataclass(frozen=True)
class PlannedFile:
    """One file: `action` (COPY a new object, REPLACE the object already under its name, as every new
    run writes its objects again with freshly encrypted headers, or REFUSE), the bytes of its object
    (None when unknown), where it would go, and why (a refusal's cause, or a remark)."""

    accession_id: str
    action: str
    size: int | None
    destination: str
    note: str = ""


@dataclass(frozen=True)
class SyncPlan:
    """Every file's fate; `refusal` says why the run would fail (None: it would sync the dataset)."""

    dataset_id: str
    files: tuple[PlannedFile, ...]
    refusal: str | None


def plan_sync(
    dataset_id: str,
    accession_ids: list[str],
    database: SdaDatabase,
    keys: NodeKeys,
    archive: ArchiveStorage,
    sync: SyncStorage,
    manifest_schema: dict[str, object],
) -> SyncPlan:
    """Look each file up as `fetch_file_records` does, re-encrypt its header in memory, find its archived
    body and its place in sync storage: what `bpsync sync` would do, found by reading only."""
    records = database.file_records(dataset_id, accession_ids).records
    found = {record.accession_id for record in records}
    unknown = [
        PlannedFile(accession_id, REFUSE, None, "", "not in sda.files")
        for accession_id in accession_ids
        if accession_id not in found
    ]
    if not records and not accession_ids:
        return SyncPlan(dataset_id, (), f"dataset {dataset_id}: no files in sda.file_dataset for this dataset")
    refusal = _dataset_refusal(dataset_id, accession_ids, records, manifest_schema)
    paths = Counter(record.submission_file_path for record in records)
    planned = [_plan_file(record, dataset_id, paths, keys, archive, sync) for record in records]
    if refusal is not None:
        # The run refuses the dataset before it copies anything.
        planned = [
            item if item.action == REFUSE else PlannedFile(item.accession_id, REFUSE, item.size, "", "dataset refused")
            for item in planned
        ]
    elif any(item.action == REFUSE for item in planned):
        refused = [item.accession_id for item in planned if item.action == REFUSE]
        refusal = (
            f"dataset {dataset_id}: copy_files would fail for {', '.join(refused)} (the other files would be "
            "copied) and the manifest would not be posted"
        )
    return SyncPlan(dataset_id, tuple(sorted(unknown + planned, key=lambda item: item.accession_id)), refusal)


def _dataset_refusal(
    dataset_id: str, accession_ids: list[str], records: list[FileRecord], manifest_schema: dict[str, object]
) -> str | None:
    """Why `fetch_file_records` or the manifest would refuse the whole dataset, if they would."""
    try:
        check_records(dataset_id, accession_ids, records)
        validate_manifest(build_manifest(dataset_id, records), manifest_schema)
    except SyncError as error:
        return str(error)
    return None


def _plan_file(
    record: FileRecord,
    dataset_id: str,
    paths: Counter[str],
    keys: NodeKeys,
    archive: ArchiveStorage,
    sync: SyncStorage,
) -> PlannedFile:
    problems = record_problems(record, dataset_id)
    if paths[record.submission_file_path] > 1:
        problems.append("another file of the dataset has the same submission_file_path")
    planned_size = record.archive_file_size
    if problems:
        return PlannedFile(record.accession_id, REFUSE, planned_size, "", "; ".join(problems))
    try:
        header = reencrypt_header(bytes.fromhex(record.header_hex), keys.secret_key, keys.receiver_public_key)
    except Exception as error:
        return PlannedFile(record.accession_id, REFUSE, planned_size, "", f"cannot re-encrypt the header: {error}")
    try:
        body = archive.body(record)
        body_size = body.size()
        if record.archive_file_size is not None and body_size != record.archive_file_size:
            raise SyncError(
                f"archived body {body.describe()} is {body_size} bytes but sda.files.archive_file_size says "
                f"{record.archive_file_size}"
            )
        size = len(header) + body_size
        existing = sync.find(record.submission_file_path)
        placement = existing or sync.place(record.submission_file_path, size)
    except SyncError as error:
        return PlannedFile(record.accession_id, REFUSE, planned_size, "", str(error))
    unverified = "" if record.archived_sha256 else "no ARCHIVED sha256: its body would be checked by length only"
    if existing is None:
        return PlannedFile(record.accession_id, COPY, size, placement.describe(), unverified)
    there = f"an object of {existing.size()} bytes is there"
    return PlannedFile(
        record.accession_id, REPLACE, size, placement.describe(), "; ".join(filter(None, [there, unverified]))
    )
