"""What the service writes to POSIX sync storage is not world-readable, whatever the umask.

Synced objects are 0640 and every directory the sync creates for them is 0750; an object being
written is a hidden temporary file only its owner can read, and a write that fails leaves nothing
behind. (That a failing copy leaves no `*.bpsync-partial` file and no S3 multipart upload, end to
end, is in jobs/test_sync_dataset_failures.py; stale temporary files in storage/test_sync_storage.py.)
"""

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bpsync_dagster.configuration import PosixStorage, StorageSettings
from bpsync_dagster.storage.posix_sync import PARTIAL_SUFFIX
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.environment import Node

NESTED_FILES = [("submitter@example.org/study/raw/a.c4gh", b"a" * 300), ("submitter@example.org/b.c4gh", b"b" * 200)]


@contextmanager
def process_umask(mask: int) -> Iterator[None]:
    """This process's umask (inherited by the `bpsync` it starts) set to `mask` for the block."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode) for path in root.rglob("*")}


def sync_nested_dataset(node: Node, umask: int) -> dict[str, int]:
    """`bpsync sync` of a dataset whose files lie in nested folders; the mode of everything it made."""
    dataset_id = node.dataset_id("modes")
    files = node.add_dataset(dataset_id, NESTED_FILES)
    with process_umask(umask):
        result = node.sync_mapped(dataset_id)
    assert result.returncode == 0, result.stdout + result.stderr
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    return modes_under(node.sync_dir)


def test_synced_objects_are_0640_even_under_a_permissive_umask(make_node) -> None:
    node: Node = make_node("posix", "posix")

    modes = sync_nested_dataset(node, umask=0o000)

    objects = {name: mode for name, mode in modes.items() if (node.sync_dir / name).is_file()}
    assert sorted(objects) == sorted(f"{node.prefix}/{path}" for path, _ in NESTED_FILES)
    assert set(objects.values()) == {0o640}


def test_every_directory_a_sync_creates_is_0750(make_node) -> None:
    node: Node = make_node("posix", "posix")

    modes = sync_nested_dataset(node, umask=0o022)

    directories = {name: oct(mode) for name, mode in modes.items() if (node.sync_dir / name).is_dir()}
    assert len(directories) == 4  # <prefix>, its submitter folder, study, study/raw
    assert directories == dict.fromkeys(directories, oct(0o750))


def test_an_object_being_written_is_readable_by_its_owner_only_and_gone_when_the_write_fails(
    tmp_path: Path,
) -> None:
    storage = SyncStorage(StorageSettings("sync", posix=(PosixStorage(tmp_path),)))
    staged = storage.place("user/file.c4gh", 6).stage(6)
    staged.write(b"secret")

    (partial,) = (tmp_path / "user").glob(f".file.c4gh.*{PARTIAL_SUFFIX}")
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    staged.abort()

    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == []
