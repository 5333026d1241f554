"""The file-sync manifest that tells the receiving node what a dataset holds."""

import hashlib
import json

import jsonschema

from bpsync_dagster.configuration.schemas import schema_validator
from bpsync_dagster.errors import SyncError
from bpsync_dagster.sda_database import FileRecord


class ManifestError(SyncError):
    """The manifest cannot be built or does not match `file-sync.json`; it is never sent."""


def build_manifest(dataset_id: str, records: list[FileRecord]) -> dict[str, object]:
    """`{"dataset_id", "dataset_files": [{"filepath", "file_id", "sha256"}], "user"}` per spec."""
    if not records:
        raise ManifestError(f"dataset {dataset_id}: no files, and the remote rejects an empty dataset_files")
    users = sorted({record.submission_user for record in records})
    if len(users) != 1:
        raise ManifestError(
            f"dataset {dataset_id}: files were submitted by several users ({', '.join(users)}); the manifest has one user"
        )
    missing = [record.accession_id for record in records if not record.unencrypted_sha256]
    if missing:
        raise ManifestError(f"dataset {dataset_id}: no SHA256 UNENCRYPTED checksum for {', '.join(missing)}")
    return {
        "dataset_id": dataset_id,
        "dataset_files": [
            {
                "filepath": record.submission_file_path,
                "file_id": record.accession_id,
                "sha256": record.unencrypted_sha256,
            }
            for record in records
        ],
        "user": users[0],
    }


def validate_manifest(manifest: dict[str, object], schema: dict[str, object]) -> None:
    error = jsonschema.exceptions.best_match(schema_validator(schema).iter_errors(manifest))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "the manifest"
        raise ManifestError(
            f"dataset {manifest.get('dataset_id')}: {where} does not match file-sync.json: {error.message}"
        )


def manifest_body(manifest: dict[str, object]) -> bytes:
    """The exact bytes POSTed; its sha256 is recorded in the run's metadata."""
    return json.dumps(manifest, separators=(",", ":")).encode()


def manifest_sha256(manifest: dict[str, object]) -> str:
    return hashlib.sha256(manifest_body(manifest)).hexdigest()
