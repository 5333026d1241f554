"""POSIX sync locations: objects written to a temporary file in their directory, fsynced and renamed.

Directories are walked and files created without following symbolic links: a link in the way is refused,
naming it. An interrupted write's temporary files are found by their prefix and removed by the next one.
"""

import errno
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from bpsync_dagster.configuration import PosixStorage
from bpsync_dagster.storage.directory_fsync import fsync_directory
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.placement import Placement, StagedObject, Usage

PARTIAL_SUFFIX = ".bpsync-partial"
NAME_MAX = 255
# Two dots and eight random characters besides the object's name and the suffix.
PARTIAL_OVERHEAD = 2 + 8 + len(PARTIAL_SUFFIX)
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
WRITE_BACK_BYTES = 64 * 1024 * 1024
# copy_file_range cannot copy between these two files (other file systems, an old kernel): sendfile can.
NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})


class PosixStaged:
    """A temporary file in the object's directory (opened without following links), renamed over
    the final name by `commit`. Owns `directory`, a descriptor of that directory.

    Written at its current end, by `write` or in the kernel by `copy_from`; every WRITE_BACK_BYTES
    written, write-back of them is started, so that the final fsync has little left to do."""

    def __init__(self, directory: int, final_path: Path) -> None:
        self._directory = directory
        self._final_path = final_path
        self._temporary = f"{partial_prefix(final_path.name)}{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
        self._descriptor = os.open(
            self._temporary,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=directory,
        )
        self._written = 0
        self._flushed = 0
        self._in_kernel = True

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._descriptor, view) :]
        self._wrote(len(data))

    def copy_from(self, source: int, offset: int, length: int) -> int:
        """Append up to `length` bytes of the file `source` from `offset`, copied in the kernel
        (`copy_file_range`, else `sendfile` where the two files cannot share it); the count copied,
        0 at the source's end."""
        if self._in_kernel:
            try:
                copied = os.copy_file_range(source, self._descriptor, length, offset)
            except OSError as error:
                if error.errno not in NO_COPY_FILE_RANGE:
                    raise
                self._in_kernel = False
        if not self._in_kernel:
            copied = os.sendfile(self._descriptor, source, offset, length)
        self._wrote(copied)
        return copied

    def _wrote(self, count: int) -> None:
        self._written += count
        if self._written - self._flushed >= WRITE_BACK_BYTES:
            # Dirty pages are not dropped: this starts their write-back.
            os.posix_fadvise(self._descriptor, self._flushed, self._written - self._flushed, os.POSIX_FADV_DONTNEED)
            self._flushed = self._written

    def commit(self) -> None:
        try:
            os.fchmod(self._descriptor, FILE_MODE)
            os.fsync(self._descriptor)
            descriptor, self._descriptor = self._descriptor, -1
            os.close(descriptor)
            _refuse_link(self._directory, self._final_path)
            os.replace(self._temporary, self._final_path.name, src_dir_fd=self._directory, dst_dir_fd=self._directory)
            fsync_directory(self._directory)
        except OSError as error:
            raise StorageError(f"cannot write {self._final_path}: {error.strerror}") from error
        os.close(self._directory)
        self._directory = -1

    def abort(self) -> None:
        if self._descriptor >= 0:
            descriptor, self._descriptor = self._descriptor, -1
            os.close(descriptor)
        if self._directory >= 0:
            try:
                os.unlink(self._temporary, dir_fd=self._directory)
            except FileNotFoundError:
                pass
            os.close(self._directory)
            self._directory = -1


def partial_prefix(name: str) -> str:
    """How the temporary files written for object `name` begin: `.<name>.`, with `name` shortened and
    followed by a digest of it where the whole temporary name would exceed NAME_MAX."""
    encoded = os.fsencode(name)
    if len(encoded) <= NAME_MAX - PARTIAL_OVERHEAD:
        return f".{name}."
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    kept = encoded[: NAME_MAX - PARTIAL_OVERHEAD - len(digest) - 1].decode("utf-8", "ignore")
    return f".{kept}~{digest}."


def _refuse_link(directory: int, path: Path) -> None:
    """Raise if `path`'s last component, in `directory`, is a symbolic link."""
    try:
        mode = os.stat(path.name, dir_fd=directory, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise StorageError(f"refusing to write {path}: it is a symbolic link in sync storage")


def _make_directories(directory: Path) -> None:
    """Create `directory` and its missing parents, each DIRECTORY_MODE whatever the umask."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIRECTORY_MODE)
        except FileExistsError:
            continue
        os.chmod(path, DIRECTORY_MODE)


def _open_directory(root: Path, directory: Path) -> int:
    """A descriptor of `directory` below `root`, made (DIRECTORY_MODE) where missing, reached one
    component at a time without following a symbolic link (which is refused, naming it)."""
    _make_directories(root)
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    reached = root
    try:
        for name in directory.relative_to(root).parts:
            reached = reached / name
            try:
                os.mkdir(name, DIRECTORY_MODE, dir_fd=descriptor)
                created = True
            except FileExistsError:
                created = False
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=descriptor)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    _refuse_link(descriptor, reached)
                raise
            os.close(descriptor)
            descriptor = child
            if created:
                os.fchmod(descriptor, DIRECTORY_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


class PosixPlacement:
    def __init__(self, location: "PosixLocation", key: str) -> None:
        self._location = location
        self.path = location.root / key

    def describe(self) -> str:
        return str(self.path)

    def size(self) -> int | None:
        try:
            status = self.path.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(status.st_mode):
            raise StorageError(f"refusing to read {self.path}: it is a symbolic link in sync storage")
        return status.st_size

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as stream:
            yield stream

    def buffer_size(self, size: int) -> int:
        return 0

    def stage(self, size: int) -> StagedObject:
        try:
            directory = _open_directory(self._location.root, self.path.parent)
        except OSError as error:
            raise StorageError(f"cannot write {self.path}: {error.strerror}") from error
        try:
            _refuse_link(directory, self.path)
            for stale in self._location.stale_partials(directory, self.path):
                try:
                    os.unlink(stale, dir_fd=directory)
                except FileNotFoundError:
                    pass
            return PosixStaged(directory, self.path)
        except OSError as error:
            os.close(directory)
            raise StorageError(f"cannot write {self.path}: {error.strerror}") from error
        except BaseException:
            os.close(directory)
            raise


class PosixLocation:
    def __init__(self, entry: PosixStorage) -> None:
        self.root = entry.path
        self.max_objects = entry.max_objects
        self.max_size = entry.max_size
        self._partials: dict[Path, dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    def placement(self, key: str) -> Placement:
        return PosixPlacement(self, key)

    def stale_partials(self, directory: int, final_path: Path) -> list[str]:
        """Names of the temporary files an interrupted earlier write of `final_path` left in
        `directory` (its descriptor); each directory is listed once."""
        with self._lock:
            by_prefix = self._partials.get(final_path.parent)
            if by_prefix is None:
                by_prefix = self._partials[final_path.parent] = _partials_by_prefix(directory)
            return by_prefix.pop(partial_prefix(final_path.name), [])

    def usage(self) -> Usage:
        usage = Usage(0, 0)
        for directory, _subdirectories, files in os.walk(self.root):
            for name in files:
                if not name.endswith(PARTIAL_SUFFIX):
                    usage.objects += 1
                    usage.size += os.lstat(os.path.join(directory, name)).st_size
        return usage


def _partials_by_prefix(directory: int) -> dict[str, list[str]]:
    """`<partial_prefix(name)><random><PARTIAL_SUFFIX>` files of a directory, by their prefix."""
    partials: dict[str, list[str]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX):
                prefix = entry.name[: -len(PARTIAL_SUFFIX)].rpartition(".")[0] + "."
                partials.setdefault(prefix, []).append(entry.name)
    return partials
