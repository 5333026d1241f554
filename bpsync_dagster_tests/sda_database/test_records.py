"""Checks a file record must pass before it is synced."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpsync_dagster.sda_database.records import (
    FileRecord,
    RecordError,
    check_records,
    destination_problem,
    record_problems,
)

DATASET = "SYNC-001-12345"
SHA = "82e4e60e7beb3db2e06a00a079788f7d71f75b61a4b75f28c4c942703dabb6d6"
GOOD = FileRecord(
    accession_id="SYNC-123-00003",
    submission_user="user.name@example.com",
    submission_file_path="user/dir/file1.c4gh",
    archive_location="/archive",
    archive_file_path="7d2c/8a1e-file",
    archive_file_size=1234,
    header_hex="637279707434676801000000",
    unencrypted_sha256=SHA,
    archived_sha256=SHA.upper(),
    datasets=(DATASET,),
)


def record(**changes: object) -> FileRecord:
    return dataclasses.replace(GOOD, **changes)


@pytest.mark.parametrize(
    "path",
    [
        "file.c4gh",
        "user/dir/file1.c4gh",
        "a/b.c/d..e/...f/.hidden",
        "ünïcødé/файл.c4gh",
        "x" * 255,
        "é" * 127,
        "with space/and-dash_underscore+plus@at.c4gh",
    ],
)
def test_good_destinations(path: str) -> None:
    assert destination_problem(path) is None


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "submission_file_path is empty"),
        ("/etc/passwd", "submission_file_path is absolute"),
        ("//x", "submission_file_path is absolute"),
        ("..", "submission_file_path contains '..'"),
        ("../escape.c4gh", "submission_file_path contains '..'"),
        ("user/../../escape.c4gh", "submission_file_path contains '..'"),
        ("user/..", "submission_file_path contains '..'"),
        ("./x", "submission_file_path has an empty or '.' component"),
        ("a/./b", "submission_file_path has an empty or '.' component"),
        ("a//b", "submission_file_path has an empty or '.' component"),
        ("dir/", "submission_file_path has an empty or '.' component"),
        ("a\nb", "submission_file_path contains control characters"),
        ("a\x00b", "submission_file_path contains control characters"),
        ("tab\there", "submission_file_path contains control characters"),
        ("del\x7f", "submission_file_path contains control characters"),
        ("a\\b", "submission_file_path contains a backslash"),
        ("..\\escape", "submission_file_path contains a backslash"),
        ("bad\udcffsurrogate", "submission_file_path is not valid UTF-8"),
        ("/".join(["x" * 200] * 5) + "/y" * 13, "submission_file_path is longer than 1024 bytes"),
        ("/".join(["é" * 100] * 6), "submission_file_path is longer than 1024 bytes"),
        ("a/" + "x" * 256, "submission_file_path has a component longer than 255 bytes"),
        ("é" * 128, "submission_file_path has a component longer than 255 bytes"),
    ],
)
def test_bad_destinations(path: str, problem: str) -> None:
    assert destination_problem(path) == problem


def test_length_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    exactly = "/".join(["x" * 254] * 4) + "/" + "y" * 4
    assert len(exactly.encode()) == 1024
    assert destination_problem(exactly) is None
    assert destination_problem(exactly + "y") == "submission_file_path is longer than 1024 bytes"


@pytest.mark.parametrize("char", ["\x85", "\x9b"])
def test_c1_control_characters_are_refused(char: str) -> None:
    assert destination_problem(f"a{char}b") == "submission_file_path contains control characters"


def test_good_records_pass() -> None:
    check_records(
        DATASET,
        [GOOD.accession_id, "SYNC-123-00004"],
        [GOOD, record(accession_id="SYNC-123-00004", submission_file_path="user/file4.c4gh", archived_sha256=None)],
    )
    assert record_problems(record(datasets=(DATASET, "SYNC-001-99999")), DATASET) == []


def test_unknown_accession_ids_are_named() -> None:
    with pytest.raises(RecordError) as caught:
        check_records(DATASET, [GOOD.accession_id, "SYNC-123-00009", "SYNC-123-00010"], [GOOD])

    assert str(caught.value) == f"dataset {DATASET}: SYNC-123-00009: not in sda.files; SYNC-123-00010: not in sda.files"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"datasets": ("SYNC-001-99999",)}, "the file belongs to dataset SYNC-001-99999, not SYNC-001-12345"),
        ({"header_hex": ""}, "the file has no header"),
        ({"header_hex": "zz"}, "the header is not valid hex"),
        ({"unencrypted_sha256": None}, "the file has no SHA256 UNENCRYPTED checksum"),
        ({"unencrypted_sha256": SHA[:-1]}, "the SHA256 UNENCRYPTED checksum is not 64 hex digits"),
        ({"archived_sha256": "g" * 64}, "the SHA256 ARCHIVED checksum is not 64 hex digits"),
        ({"submission_user": ""}, "the file has no submission_user"),
        ({"archive_location": ""}, "the file has no archive location or path"),
        ({"archive_file_path": ""}, "the file has no archive location or path"),
        ({"submission_file_path": "../x"}, "submission_file_path contains '..'"),
    ],
)
def test_record_problem_is_named(changes: dict[str, object], problem: str) -> None:
    bad = record(**changes)

    assert record_problems(bad, DATASET) == [problem]
    with pytest.raises(RecordError) as caught:
        check_records(DATASET, [bad.accession_id], [bad])
    assert str(caught.value) == f"dataset {DATASET}: {bad.describe()}: {problem}"


def test_every_problem_of_every_record_is_reported_up_to_ten() -> None:
    bad = [
        record(accession_id=f"SYNC-123-{n:05}", submission_file_path=f"{n}.c4gh", submission_user="", header_hex="")
        for n in range(6)
    ]

    with pytest.raises(RecordError) as caught:
        check_records(DATASET, [r.accession_id for r in bad], bad)

    message = str(caught.value)
    assert message.count("; ") == 10
    assert message.endswith("; and 2 more")
    assert "\n" not in message


def test_without_dataset_names_files_sharing_no_dataset_key_are_refused() -> None:
    first, shared, unmapped, other = (
        record(accession_id=f"SYNC-123-0000{n}", submission_file_path=f"{n}.c4gh", datasets=None, dataset_keys=keys)
        for n, keys in ((1, ("7",)), (2, ("7", "9")), (3, ()), (4, ("9",)))
    )

    check_records(DATASET, [], [first, shared, unmapped])
    with pytest.raises(RecordError) as caught:
        check_records(DATASET, [], [first, shared, unmapped, other])

    assert str(caught.value) == (
        f"dataset {DATASET}: SYNC-123-00001 and SYNC-123-00004 are mapped to different datasets in sda.file_dataset"
    )


def test_checksum_with_trailing_newline_is_refused() -> None:
    assert record_problems(record(unencrypted_sha256=SHA + "\n"), DATASET) == [
        "the SHA256 UNENCRYPTED checksum is not 64 hex digits"
    ]


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["", SHA, "..", "/a"]
)
records = st.builds(
    FileRecord,
    accession_id=any_text,
    submission_user=any_text,
    submission_file_path=any_text,
    archive_location=any_text,
    archive_file_path=any_text,
    archive_file_size=st.none() | st.integers(),
    header_hex=any_text,
    unencrypted_sha256=st.none() | any_text,
    archived_sha256=st.none() | any_text,
    datasets=st.tuples() | st.tuples(any_text) | st.tuples(any_text, any_text),
)


@settings(max_examples=200, deadline=None)
@given(dataset_id=any_text, requested=st.lists(any_text, max_size=4), found=st.lists(records, max_size=4))
def test_checks_raise_only_record_error(dataset_id: str, requested: list[str], found: list[FileRecord]) -> None:
    for one in found:
        problems = record_problems(one, dataset_id)
        assert all(isinstance(problem, str) and problem for problem in problems)
    try:
        check_records(dataset_id, requested, found)
    except RecordError as error:
        assert str(error).startswith(f"dataset {dataset_id}: ")
    else:
        assert all(record_problems(one, dataset_id) == [] for one in found)
        assert set(requested) <= {one.accession_id for one in found}


def test_files_with_the_same_submission_file_path_are_refused_naming_each() -> None:
    first = record(accession_id="SYNC-123-00001")
    second = record(accession_id="SYNC-123-00002", archive_file_path="other")
    third = record(accession_id="SYNC-123-00003", submission_file_path="user/dir/file2.c4gh")
    fourth = record(accession_id="SYNC-123-00004", submission_file_path="user/dir/file2.c4gh")
    fifth = record(accession_id="SYNC-123-00005", submission_file_path="user/dir/file2.c4gh")
    apart = record(accession_id="SYNC-123-00006", submission_file_path="user/dir/FILE1.c4gh")

    check_records(DATASET, [], [first, third, apart])
    with pytest.raises(RecordError) as caught:
        check_records(DATASET, [], [first, second, third, fourth, apart, fifth])

    assert str(caught.value) == (
        f"dataset {DATASET}: SYNC-123-00001 and SYNC-123-00002 have the same submission_file_path "
        "'user/dir/file1.c4gh': they would be one object in sync storage; SYNC-123-00003, SYNC-123-00004 and "
        "SYNC-123-00005 have the same submission_file_path 'user/dir/file2.c4gh': they would be one object in "
        "sync storage"
    )
