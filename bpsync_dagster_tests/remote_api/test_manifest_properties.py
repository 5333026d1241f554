"""Properties of manifest building on generated file records: `build_manifest` and
`validate_manifest` only ever raise `ManifestError`, naming the dataset on one line, and what they
accept is a manifest any file-sync.json validator accepts, holding every record in order."""

import dataclasses
import json

import jsonschema
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bpsync_dagster.configuration.schemas import SHIPPED_SCHEMAS
from bpsync_dagster.remote_api import ManifestError, build_manifest, manifest_body, validate_manifest
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster_tests.support.record_strategies import good_datasets, hex_digests, replace_one

FILE_SYNC_SCHEMA = json.loads((SHIPPED_SCHEMAS / "bigpicture" / "file-sync.json").read_text())
STOCK_VALIDATOR = jsonschema.Draft7Validator(FILE_SYNC_SCHEMA)

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
one_line_text = st.text(st.characters(codec=None, exclude_categories=("Cc", "Zl", "Zp", "Cs")), max_size=80)
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
        unencrypted_sha256=hex_digests | st.none() | text,
        archived_sha256=st.none() | hex_digests | text,
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
        event("refused")
        assert str(error).startswith(f"dataset {dataset_id}: ")
    else:
        event("accepted")


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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset=good_datasets())
def test_a_manifest_of_valid_records_holds_every_record_and_passes_any_validator(
    dataset: tuple[str, list[FileRecord]],
) -> None:
    dataset_id, records = dataset

    manifest = build_and_validate(dataset_id, records)

    STOCK_VALIDATOR.validate(manifest)
    assert manifest == {
        "dataset_id": dataset_id,
        "dataset_files": [
            {
                "filepath": record.submission_file_path,
                "file_id": record.accession_id,
                "sha256": record.unencrypted_sha256,
            }
            for record in records
        ],
        "user": records[0].submission_user,
    }
    assert json.loads(manifest_body(manifest)) == manifest


SHORT = st.text(st.characters(codec="utf-8", categories=("L", "N")), max_size=4)


@st.composite
def one_bad_change(draw: st.DrawFn) -> tuple[str, list[FileRecord], str]:
    """A valid dataset changed in one way, and what the manifest error says after `dataset <id>: `."""
    dataset_id, records = draw(good_datasets())
    kind = draw(
        st.sampled_from(
            [
                "no files",
                "two users",
                "no checksum",
                "bad checksum",
                "short file_id",
                "whitespace in file_id",
                "short filepath",
                "short dataset_id",
                "whitespace in dataset_id",
                "short user",
            ]
        )
    )
    event(kind)
    if kind == "no files":
        return dataset_id, [], "no files, and the remote rejects an empty dataset_files"
    if kind == "two users":
        other = records[0].submission_user + "-other"
        index, changed = replace_one(draw, [*records, records[0]], submission_user=other)
        users = ", ".join(sorted({records[0].submission_user, other}))
        return dataset_id, changed, f"files were submitted by several users ({users}); the manifest has one user"
    if kind == "no checksum":
        index, changed = replace_one(draw, records, unencrypted_sha256=draw(st.sampled_from([None, ""])))
        return dataset_id, changed, f"no SHA256 UNENCRYPTED checksum for {records[index].accession_id}"
    if kind == "bad checksum":
        digest = draw(hex_digests)
        bad = draw(st.sampled_from([digest[:-1], digest + "a", "g" + digest[1:], digest + "\n"]))
        index, changed = replace_one(draw, records, unencrypted_sha256=bad)
        return dataset_id, changed, f"dataset_files/{index}/sha256 does not match file-sync.json"
    if kind == "short file_id":
        index, changed = replace_one(draw, records, accession_id=draw(SHORT.map(lambda text: text or "x")))
        return dataset_id, changed, f"dataset_files/{index}/file_id does not match file-sync.json"
    if kind == "whitespace in file_id":
        index, changed = replace_one(draw, records, accession_id="SYNC 123 00004")
        return dataset_id, changed, f"dataset_files/{index}/file_id does not match file-sync.json"
    if kind == "short filepath":
        index, changed = replace_one(draw, records, submission_file_path=draw(SHORT))
        return dataset_id, changed, f"dataset_files/{index}/filepath does not match file-sync.json"
    if kind == "short dataset_id":
        return draw(SHORT), records, "dataset_id does not match file-sync.json"
    if kind == "whitespace in dataset_id":
        return dataset_id + " x", records, "dataset_id does not match file-sync.json"
    user = draw(SHORT)
    return (
        dataset_id,
        [dataclasses.replace(record, submission_user=user) for record in records],
        ("user does not match file-sync.json"),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=one_bad_change())
def test_one_bad_change_to_a_valid_dataset_is_refused_naming_it(case: tuple[str, list[FileRecord], str]) -> None:
    dataset_id, records, expected = case

    with pytest.raises(ManifestError) as caught:
        build_and_validate(dataset_id, records)

    assert str(caught.value).startswith(f"dataset {dataset_id}: {expected}"), str(caught.value)


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
        event("refused")
        assert str(error).startswith(f"dataset {manifest.get('dataset_id')}: ")
        assert "does not match file-sync.json" in str(error)
    else:
        event("accepted")
        STOCK_VALIDATOR.validate(manifest)
