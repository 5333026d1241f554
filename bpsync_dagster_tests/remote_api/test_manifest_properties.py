"""Properties of manifest building on generated file records: `build_manifest` and
`validate_manifest` only ever raise `ManifestError`, naming the dataset on one line, and what they
accept is a manifest any file-sync.json validator accepts, holding every record in order."""

import json
import re

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpsync_dagster.configuration.schemas import SHIPPED_SCHEMAS
from bpsync_dagster.remote_api import ManifestError, build_manifest, manifest_body, validate_manifest
from bpsync_dagster.sda_database import FileRecord

FILE_SYNC_SCHEMA = json.loads((SHIPPED_SCHEMAS / "bigpicture" / "file-sync.json").read_text())
STOCK_VALIDATOR = jsonschema.Draft7Validator(FILE_SYNC_SCHEMA)
SHA256 = re.compile(r"[0-9a-fA-F]{64}")

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
one_line_text = st.text(st.characters(codec=None, exclude_categories=("Cc", "Zl", "Zp", "Cs")), max_size=80)
hex_digest = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)
accession_like = st.from_regex(r"SYNC-[0-9]{3}-[0-9]{5,8}", fullmatch=True)
path_like = st.from_regex(r"[a-z]{1,8}(/[a-z0-9._-]{1,12}){0,3}\.c4gh", fullmatch=True)
users = st.sampled_from(["user.name@example.com", "other.user@example.org"])


def file_records(text: st.SearchStrategy[str]) -> st.SearchStrategy[FileRecord]:
    """Records that are mostly well-formed, with any field sometimes replaced by `text`."""
    return st.builds(
        FileRecord,
        accession_id=accession_like | text,
        submission_user=users | text,
        submission_file_path=path_like | text,
        archive_location=st.just("/archive") | text,
        archive_file_path=text,
        archive_file_size=st.none() | st.integers(),
        header_hex=text,
        unencrypted_sha256=hex_digest | st.none() | text,
        archived_sha256=st.none() | hex_digest | text,
        datasets=st.tuples() | st.tuples(text),
    )


dataset_ids = st.from_regex(r"SYNC-[0-9]{3}-[0-9]{5}", fullmatch=True) | any_text


def build_and_validate(dataset_id: str, records: list[FileRecord]) -> dict[str, object]:
    manifest = build_manifest(dataset_id, records)
    validate_manifest(manifest, FILE_SYNC_SCHEMA)
    return manifest


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset_id=dataset_ids, records=st.lists(file_records(any_text), max_size=4))
def test_building_any_records_raises_only_manifest_error_naming_the_dataset(
    dataset_id: str, records: list[FileRecord]
) -> None:
    try:
        build_and_validate(dataset_id, records)
    except ManifestError as error:
        assert str(error).startswith(f"dataset {dataset_id}: ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dataset_id=st.from_regex(r"SYNC-[0-9]{3}-[0-9]{5}", fullmatch=True) | one_line_text,
    records=st.lists(file_records(one_line_text), max_size=4),
)
def test_a_manifest_error_about_one_line_fields_is_one_line(dataset_id: str, records: list[FileRecord]) -> None:
    try:
        build_and_validate(dataset_id, records)
    except ManifestError as error:
        assert "\n" not in str(error) and "\r" not in str(error)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset_id=dataset_ids, records=st.lists(file_records(any_text), max_size=4))
def test_an_accepted_manifest_holds_every_record_and_passes_any_validator(
    dataset_id: str, records: list[FileRecord]
) -> None:
    try:
        manifest = build_and_validate(dataset_id, records)
    except ManifestError:
        return

    STOCK_VALIDATOR.validate(manifest)
    assert manifest["dataset_id"] == dataset_id
    assert [entry["file_id"] for entry in manifest["dataset_files"]] == [record.accession_id for record in records]
    assert [entry["filepath"] for entry in manifest["dataset_files"]] == [
        record.submission_file_path for record in records
    ]
    assert all(SHA256.fullmatch(entry["sha256"]) for entry in manifest["dataset_files"])
    assert {record.submission_user for record in records} == {manifest["user"]}
    assert json.loads(manifest_body(manifest)) == manifest


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=15,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "dataset_id": dataset_ids | json_values,
        "dataset_files": st.lists(
            st.fixed_dictionaries(
                {},
                optional={"filepath": path_like | json_values, "file_id": accession_like | json_values},
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "user": users | json_values,
        "extra": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=manifest_like)
def test_validating_any_manifest_raises_only_manifest_error(manifest: dict[str, object]) -> None:
    try:
        validate_manifest(manifest, FILE_SYNC_SCHEMA)
    except ManifestError as error:
        assert str(error).startswith(f"dataset {manifest.get('dataset_id')}: ")
        assert "does not match file-sync.json" in str(error)
    else:
        STOCK_VALIDATOR.validate(manifest)
