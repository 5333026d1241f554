"""Checks a file record must pass before it is synced."""

import dataclasses

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from bpsync_dagster.sda_database.records import (
    FileRecord,
    RecordError,
    check_records,
    destination_problem,
    record_problems,
)
from bpsync_dagster_tests.support.record_strategies import good_datasets, ids

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


CONTROL_CHARACTERS = st.characters(categories=("Cc",))


@st.composite
def bad_destination(draw: st.DrawFn, path: str) -> tuple[str, str]:
    """`path` made unusable in one way, and the problem `destination_problem` names."""
    cut = draw(st.integers(min_value=0, max_value=len(path)))
    return draw(
        st.sampled_from(
            [
                ("/" + path, "submission_file_path is absolute"),
                (f"{path}/../x", "submission_file_path contains '..'"),
                (f"{path}//x", "submission_file_path has an empty or '.' component"),
                (f"./{path}", "submission_file_path has an empty or '.' component"),
                (path[:cut] + "\\" + path[cut:], "submission_file_path contains a backslash"),
                (
                    path[:cut] + draw(CONTROL_CHARACTERS) + path[cut:],
                    "submission_file_path contains control characters",
                ),
                (path[:cut] + "\udcff" + path[cut:], "submission_file_path is not valid UTF-8"),
                (path + "/" + "x" * 256, "submission_file_path has a component longer than 255 bytes"),
                ("/".join([path, *["y" * 250] * 5]), "submission_file_path is longer than 1024 bytes"),
            ]
        )
    )


@st.composite
def one_bad_record(draw: st.DrawFn) -> tuple[str, list[FileRecord], int, str]:
    """A good dataset with one record changed so that exactly one check fails: the dataset, its
    records, the changed record's index and the problem named for it."""
    dataset_id, records = draw(good_datasets())
    index = draw(st.integers(min_value=0, max_value=len(records) - 1))
    chosen = records[index]
    digest = chosen.unencrypted_sha256 or SHA
    bad_digest = draw(
        st.sampled_from([digest[:-1], digest + "0", digest[:-1] + "g", digest[:10] + " " + digest[11:], digest + "\n"])
    )
    other_dataset = draw(st.sampled_from(["SYNC-999-00000", dataset_id + "-other"]))
    path, path_problem = draw(bad_destination(chosen.submission_file_path))
    changes, problem = draw(
        st.sampled_from(
            [
                ({"submission_file_path": path}, path_problem),
                ({"datasets": (other_dataset,)}, f"the file belongs to dataset {other_dataset}, not {dataset_id}"),
                ({"header_hex": ""}, "the file has no header"),
                (
                    {"header_hex": chosen.header_hex + draw(st.sampled_from(["0", "zz", "g0"]))},
                    "the header is not valid hex",
                ),
                ({"archive_location": ""}, "the file has no archive location or path"),
                ({"archive_file_path": ""}, "the file has no archive location or path"),
                (
                    {"unencrypted_sha256": draw(st.sampled_from([None, ""]))},
                    "the file has no SHA256 UNENCRYPTED checksum",
                ),
                ({"unencrypted_sha256": bad_digest}, "the SHA256 UNENCRYPTED checksum is not 64 hex digits"),
                ({"archived_sha256": bad_digest}, "the SHA256 ARCHIVED checksum is not 64 hex digits"),
                ({"submission_user": ""}, "the file has no submission_user"),
            ]
        )
    )
    changed = list(records)
    changed[index] = dataclasses.replace(chosen, **changes)
    return dataset_id, changed, index, problem


@settings(max_examples=200, deadline=None)
@given(dataset=good_datasets(), requested_all=st.booleans())
def test_records_valid_by_construction_pass(dataset: tuple[str, list[FileRecord]], requested_all: bool) -> None:
    dataset_id, found = dataset
    requested = [one.accession_id for one in found] if requested_all else []

    check_records(dataset_id, requested, found)

    assert all(record_problems(one, dataset_id) == [] for one in found)


@settings(max_examples=200, deadline=None)
@given(case=one_bad_record())
def test_one_bad_field_is_named_for_its_record(case: tuple[str, list[FileRecord], int, str]) -> None:
    dataset_id, found, index, problem = case
    bad = found[index]
    event("the file belongs to another dataset" if problem.startswith("the file belongs") else problem)

    assert record_problems(bad, dataset_id) == [problem]
    assert all(record_problems(one, dataset_id) == [] for position, one in enumerate(found) if position != index)
    with pytest.raises(RecordError) as caught:
        check_records(dataset_id, [one.accession_id for one in found], found)
    assert str(caught.value) == f"dataset {dataset_id}: {bad.describe()}: {problem}"


@settings(max_examples=100, deadline=None)
@given(dataset=good_datasets(), unknown=ids(min_size=11))
def test_a_requested_file_that_is_not_found_is_named(dataset: tuple[str, list[FileRecord]], unknown: str) -> None:
    dataset_id, found = dataset
    assume(unknown not in {one.accession_id for one in found})

    with pytest.raises(RecordError) as caught:
        check_records(dataset_id, [*(one.accession_id for one in found), unknown], found)

    assert str(caught.value) == f"dataset {dataset_id}: {unknown}: not in sda.files"


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
def test_any_records_raise_only_record_error(dataset_id: str, requested: list[str], found: list[FileRecord]) -> None:
    """Arbitrary text in every field: nearly always refused (the valid branch is covered above)."""
    for one in found:
        problems = record_problems(one, dataset_id)
        assert all(isinstance(problem, str) and problem for problem in problems)
    try:
        check_records(dataset_id, requested, found)
    except RecordError as error:
        event("refused")
        assert str(error).startswith(f"dataset {dataset_id}: ")
    else:
        event("accepted")
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
