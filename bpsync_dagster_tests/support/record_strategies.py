"""Hypothesis strategies for file records and dataset IDs that are valid by construction: each passes
`record_problems`, and a dataset of them builds a manifest `file-sync.json` accepts. Tests derive
invalid inputs from them with one targeted change, so that both branches run on every example."""

import dataclasses

from hypothesis import strategies as st

from bpsync_dagster.dataset_ids import MAX_ID_LENGTH
from bpsync_dagster.sda_database import FileRecord

# Python's `str.isprintable` refuses exactly these categories (besides the ASCII space); none of the
# rest is whitespace, so each character is also a `\S` of the schemas.
NOT_PRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")
ID_CHARACTERS = st.characters(codec="utf-8", exclude_categories=NOT_PRINTABLE)
NAME_CHARACTERS = st.characters(codec="utf-8", exclude_categories=NOT_PRINTABLE, exclude_characters="/\\")
# file-sync.json asks for at least 11 characters in a dataset or file ID and 5 in a user name.
MIN_FILE_ID_LENGTH = 11
MIN_USER_LENGTH = 5

hex_digests = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)


def ids(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """IDs any run can carry: printable, no whitespace, at most `MAX_ID_LENGTH` characters."""
    return st.text(ID_CHARACTERS, min_size=min_size, max_size=min(max_size, MAX_ID_LENGTH))


def dataset_ids(prefix: str = "SYNC-") -> st.SearchStrategy[str]:
    return ids(min_size=MIN_FILE_ID_LENGTH, max_size=30).map(lambda text: prefix + text)


# Components of at least 5 characters are never `.` or `..`, and make a filepath file-sync.json takes.
path_components = st.text(NAME_CHARACTERS, min_size=5, max_size=24)
destinations = st.lists(path_components, min_size=1, max_size=4).map("/".join)


@st.composite
def good_records(draw: st.DrawFn, dataset_id: str, user: str, accession_id: str, destination: str) -> FileRecord:
    """A record of `dataset_id` with nothing a sync refuses, to be written at `destination`."""
    return FileRecord(
        accession_id=accession_id,
        submission_user=user,
        submission_file_path=destination,
        archive_location=draw(st.sampled_from(["/archive", "https://s3.example.org/archive"])),
        archive_file_path=draw(ids()),
        archive_file_size=draw(st.none() | st.integers(min_value=0)),
        header_hex=draw(st.binary(min_size=1, max_size=40)).hex(),
        unencrypted_sha256=draw(hex_digests),
        archived_sha256=draw(st.none() | hex_digests),
        datasets=draw(st.sampled_from([None, (dataset_id,), (dataset_id, "SYNC-OTHER-DATASET")])),
    )


@st.composite
def good_datasets(draw: st.DrawFn, max_files: int = 4) -> tuple[str, list[FileRecord]]:
    """A dataset ID and 1..`max_files` records of it, with distinct accession IDs and destinations and one
    submitter."""
    dataset_id = draw(dataset_ids())
    user = draw(ids(min_size=MIN_USER_LENGTH))
    accession_ids = draw(st.lists(ids(min_size=MIN_FILE_ID_LENGTH), min_size=1, max_size=max_files, unique=True))
    paths = draw(st.lists(destinations, min_size=len(accession_ids), max_size=len(accession_ids), unique=True))
    records = [
        draw(good_records(dataset_id, user, accession_id, path))
        for accession_id, path in zip(accession_ids, paths, strict=True)
    ]
    return dataset_id, records


def replace_one(draw: st.DrawFn, records: list[FileRecord], **changes: object) -> tuple[int, list[FileRecord]]:
    """`records` with one of them (its index is returned) changed by `changes`."""
    index = draw(st.integers(min_value=0, max_value=len(records) - 1))
    changed = list(records)
    changed[index] = dataclasses.replace(records[index], **changes)
    return index, changed
