"""POSIX sync storage never writes through a symbolic link, and takes every name a directory can hold:
the temporary file of a name up to NAME_MAX (255 bytes) still fits, and is cleaned up after a kill."""

import os
from pathlib import Path

import pytest

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX
from bpsync_dagster.storage.sync import SyncStorage


def posix_storage(root: Path) -> SyncStorage:
    return SyncStorage(StorageSettings("sync", posix=(PosixStorage(root),)))


def write(storage: SyncStorage, key: str, data: bytes) -> str:
    staged = storage.place(key, len(data)).stage(len(data))
    staged.write(data)
    staged.commit()
    return storage.place(key, len(data)).describe()


def left_behind(storage: SyncStorage, key: str, data: bytes) -> None:
    """A write of `key` that stops half-way, as when its process is killed: nothing aborts it."""
    staged = storage.place(key, len(data)).stage(len(data))
    staged.write(data[: len(data) // 2])


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() or path.is_symlink())


def test_a_symlinked_directory_inside_the_sync_root_is_refused_naming_it(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "sync", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "user").mkdir(parents=True)
    (root / "user" / "study").symlink_to(elsewhere)

    with pytest.raises(StorageError) as raised:
        write(posix_storage(root), "user/study/a.c4gh", b"object")

    assert f"{root}/user/study" in str(raised.value) and "symbolic link" in str(raised.value)
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_under_the_object_name_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    root, target = tmp_path / "sync", tmp_path / "target.txt"
    target.write_bytes(b"not ours")
    (root / "user").mkdir(parents=True)
    (root / "user" / "a.c4gh").symlink_to(target)
    storage = posix_storage(root)

    with pytest.raises(StorageError) as raised:
        write(storage, "user/a.c4gh", b"object")

    assert f"{root}/user/a.c4gh" in str(raised.value) and "symbolic link" in str(raised.value)
    assert target.read_bytes() == b"not ours"
    assert (root / "user" / "a.c4gh").is_symlink()
    assert files_under(root) == ["user/a.c4gh"]


@pytest.mark.parametrize("length", [230, 231, 240, 255])
def test_an_object_name_of_up_to_255_bytes_is_written(tmp_path: Path, length: int) -> None:
    name = "n" * (length - len(".c4gh")) + ".c4gh"

    destination = write(posix_storage(tmp_path), f"user/{name}", b"object")

    assert Path(destination).read_bytes() == b"object"
    assert files_under(tmp_path) == [f"user/{name}"]


def test_a_multibyte_name_of_255_bytes_is_written(tmp_path: Path) -> None:
    name = "å" * 125 + ".c4gh"  # 250 + 5 bytes in UTF-8
    assert len(os.fsencode(name)) == 255

    destination = write(posix_storage(tmp_path), f"user/{name}", b"object")

    assert Path(destination).read_bytes() == b"object"


def test_the_leftovers_of_long_names_are_removed_by_the_next_write_of_that_name_only(tmp_path: Path) -> None:
    stem = "s" * 240
    mine, other = f"user/{stem}-1.c4gh", f"user/{stem}-2.c4gh"  # alike in their first 240 bytes
    left_behind(posix_storage(tmp_path), mine, b"x" * 1000)
    left_behind(posix_storage(tmp_path), other, b"y" * 1000)
    partials = [name for name in os.listdir(tmp_path / "user") if name.endswith(PARTIAL_SUFFIX)]
    assert len(partials) == 2 and all(len(os.fsencode(name)) <= 255 for name in partials)

    write(posix_storage(tmp_path), mine, b"whole")

    remaining = [name for name in os.listdir(tmp_path / "user") if name.endswith(PARTIAL_SUFFIX)]
    assert (tmp_path / mine).read_bytes() == b"whole"
    assert len(remaining) == 1 and remaining[0] in partials
    write(posix_storage(tmp_path), other, b"whole too")
    assert files_under(tmp_path) == sorted([mine, other])


def test_a_symlink_put_under_the_name_while_the_object_is_written_is_refused_and_nothing_left(tmp_path: Path) -> None:
    root, target = tmp_path / "sync", tmp_path / "target.txt"
    target.write_bytes(b"not ours")
    staged = posix_storage(root).place("user/a.c4gh", 6).stage(6)
    staged.write(b"object")
    (root / "user" / "a.c4gh").symlink_to(target)

    with pytest.raises(StorageError) as raised:
        try:
            staged.commit()
        except BaseException:
            staged.abort()
            raise

    assert "symbolic link" in str(raised.value)
    assert target.read_bytes() == b"not ours"
    assert files_under(root) == ["user/a.c4gh"] and (root / "user" / "a.c4gh").is_symlink()
