"""Concurrent fsyncs of one directory all return once one that started after them has completed,
and leave nothing registered; a descriptor that cannot be fsynced raises."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bpsync_dagster.storage import directory_fsync
from bpsync_dagster.storage.directory_fsync import fsync_directory


def test_concurrent_renames_into_one_directory_all_return_and_leave_nothing_registered(tmp_path: Path) -> None:
    count = 64
    start = threading.Barrier(count)

    def commit(index: int) -> None:
        (tmp_path / f".{index}.partial").write_bytes(b"x")
        descriptor = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            start.wait()
            os.replace(tmp_path / f".{index}.partial", tmp_path / str(index))
            fsync_directory(descriptor)
        finally:
            os.close(descriptor)

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(commit, range(count), timeout=60))

    assert sorted(int(path.name) for path in tmp_path.iterdir()) == list(range(count))
    assert directory_fsync._directories == {}


def test_a_descriptor_that_cannot_be_fsynced_raises_and_leaves_nothing_registered(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError):
            fsync_directory(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert directory_fsync._directories == {}
