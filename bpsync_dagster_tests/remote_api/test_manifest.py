"""The file-sync manifest: built from file records, checked against `file-sync.json`."""

import dataclasses
import hashlib
import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bpsync_dagster.configuration.schemas import SHIPPED_SCHEMAS
from bpsync_dagster.remote_api import (
    ManifestError,
    build_manifest,
    manifest_body,
    manifest_sha256,
    validate_manifest,
)
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster_tests.support.record_strategies import good_datasets

FILE_SYNC_SCHEMA = json.loads((SHIPPED_SCHEMAS / "bigpicture" / "file-sync.json").read_text())
DATASET = "SYNC-001-12345"
SHA_1 = "82e4e60e7beb3db2e06a00a079788f7d71f75b61a4b75f28c4c942703dabb6d6"
SHA_2 = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789ABCDEF"
FIRST = FileRecord(
    accession_id="SYNC-123-00003",
    submission_user="user.name@example.com",
    submission_file_path="user/dir/file1.c4gh",
    archive_location="/archive",
    archive_file_path="aa/bb",
    archive_file_size=100,
    header_hex="00",
    unencrypted_sha256=SHA_1,
    archived_sha256=None,
)
SECOND = dataclasses.replace(
    FIRST, accession_id="SYNC-123-00004", submission_file_path="user/file2.c4gh", unencrypted_sha256=SHA_2
)


def test_manifest_for_two_records() -> None:
    manifest = build_manifest(DATASET, [FIRST, SECOND])

    assert manifest == {
        "dataset_id": DATASET,
        "dataset_files": [
            {"filepath": "user/dir/file1.c4gh", "file_id": "SYNC-123-00003", "sha256": SHA_1},
            {"filepath": "user/file2.c4gh", "file_id": "SYNC-123-00004", "sha256": SHA_2},
        ],
        "user": "user.name@example.com",
    }
    expected_body = (
        b'{"dataset_id":"SYNC-001-12345","dataset_files":['
        b'{"filepath":"user/dir/file1.c4gh","file_id":"SYNC-123-00003","sha256":"' + SHA_1.encode() + b'"},'
        b'{"filepath":"user/file2.c4gh","file_id":"SYNC-123-00004","sha256":"' + SHA_2.encode() + b'"}],'
        b'"user":"user.name@example.com"}'
    )
    assert manifest_body(manifest) == expected_body
    assert manifest_sha256(manifest) == hashlib.sha256(expected_body).hexdigest()
    validate_manifest(manifest, FILE_SYNC_SCHEMA)


def test_several_submission_users_is_an_error() -> None:
    other = dataclasses.replace(SECOND, submission_user="someone.else@example.com")

    with pytest.raises(ManifestError, match=r"several users \(someone\.else@example\.com, user\.name@example\.com\)"):
        build_manifest(DATASET, [FIRST, other])


def test_no_records_is_an_error() -> None:
    with pytest.raises(ManifestError, match=rf"^dataset {DATASET}: no files"):
        build_manifest(DATASET, [])


def test_missing_checksum_is_an_error() -> None:
    with pytest.raises(ManifestError, match=r"no SHA256 UNENCRYPTED checksum for SYNC-123-00004$"):
        build_manifest(DATASET, [FIRST, dataclasses.replace(SECOND, unencrypted_sha256=None)])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"submission_file_path": "a.c4"}, "dataset_files/1/filepath"),
        ({"unencrypted_sha256": SHA_2[:-1]}, "dataset_files/1/sha256"),
        ({"unencrypted_sha256": "z" * 64}, "dataset_files/1/sha256"),
        ({"accession_id": "SHORT-ID"}, "dataset_files/1/file_id"),
        ({"accession_id": "SYNC 123 00004"}, "dataset_files/1/file_id"),
    ],
)
def test_schema_rejects_bad_file_fields(changes: dict[str, object], field: str) -> None:
    manifest = build_manifest(DATASET, [FIRST, dataclasses.replace(SECOND, **changes)])

    with pytest.raises(ManifestError, match=rf"^dataset {DATASET}: {field} does not match file-sync.json: "):
        validate_manifest(manifest, FILE_SYNC_SCHEMA)


@pytest.mark.parametrize(("dataset_id", "user"), [("SHORT", FIRST.submission_user), (DATASET, "abc")])
def test_schema_rejects_bad_dataset_id_or_user(dataset_id: str, user: str) -> None:
    manifest = build_manifest(dataset_id, [dataclasses.replace(FIRST, submission_user=user)])

    with pytest.raises(ManifestError, match="does not match file-sync.json"):
        validate_manifest(manifest, FILE_SYNC_SCHEMA)


@pytest.mark.parametrize("field", ["sha256", "file_id"])
def test_schema_rejects_trailing_newline(field: str) -> None:
    manifest = build_manifest(DATASET, [FIRST])
    manifest["dataset_files"][0][field] += "\n"  # type: ignore[index]

    with pytest.raises(ManifestError, match=f"dataset_files/0/{field}"):
        validate_manifest(manifest, FILE_SYNC_SCHEMA)


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=70) | st.sampled_from(
    [SHA_1, "user.name@example.com"]
)
records = st.builds(
    FileRecord,
    accession_id=any_text,
    submission_user=any_text | st.just(FIRST.submission_user),
    submission_file_path=any_text,
    archive_location=any_text,
    archive_file_path=any_text,
    archive_file_size=st.none() | st.integers(),
    header_hex=any_text,
    unencrypted_sha256=st.none() | any_text | st.just(SHA_1),
    archived_sha256=st.none() | any_text,
)


@settings(max_examples=200, deadline=None)
@given(dataset=st.tuples(any_text, st.lists(records, max_size=3)) | good_datasets(max_files=3))
def test_manifest_checks_raise_only_manifest_error(dataset: tuple[str, list[FileRecord]]) -> None:
    """Any text in every field, or a valid dataset, so that both branches run."""
    dataset_id, found = dataset
    try:
        manifest = build_manifest(dataset_id, found)
        validate_manifest(manifest, FILE_SYNC_SCHEMA)
    except ManifestError as error:
        event("refused")
        assert str(error).startswith(f"dataset {dataset_id}: ")
    else:
        event("accepted")
        assert json.loads(manifest_body(manifest)) == manifest
        assert [entry["file_id"] for entry in manifest["dataset_files"]] == [one.accession_id for one in found]
