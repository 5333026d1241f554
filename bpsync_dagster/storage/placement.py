"""What every sync location offers the copy: a placement per object name, written through a staged object."""

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol


class StagedObject(Protocol):
    """An object being written; invisible under its name until `commit`."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Placement(Protocol):
    """One object name in one sync location."""

    def describe(self) -> str: ...

    def size(self) -> int | None: ...

    def open(self) -> AbstractContextManager[BinaryIO]: ...

    def buffer_size(self, size: int) -> int:
        """The bytes a write of an object of `size` bytes holds in memory, besides what it is given."""
        ...

    def stage(self, size: int) -> StagedObject: ...


@dataclass
class Usage:
    objects: int
    size: int


class Location(Protocol):
    max_objects: int
    max_size: int

    def placement(self, key: str) -> Placement: ...

    def usage(self) -> Usage: ...
