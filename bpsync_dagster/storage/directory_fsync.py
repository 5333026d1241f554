"""Fsyncs of a directory shared by the renames into it that wait for one at the same time.

A rename is durable once an fsync of its directory that started after it has completed. Of the
committers waiting on one directory, one runs the fsync (on its own descriptor: fsync applies to
the directory itself) while the others wait; those that renamed before it started return when it
completes, and the ones that came during it share the next one.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _DirectoryFsyncs:
    """The fsyncs of one directory: `started` counts those begun, `completed` the last one ended
    without error."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.started = 0
        self.completed = 0
        self.running = False
        self.users = 0


_registry_lock = threading.Lock()
_directories: dict[tuple[int, int], _DirectoryFsyncs] = {}


def fsync_directory(descriptor: int) -> None:
    """Return once an fsync of the directory `descriptor` that started after this call has
    completed, running it here unless another committer's covers this one; an error of the fsync
    run here is raised."""
    with _shared(descriptor) as fsyncs, fsyncs.condition:
        needed = fsyncs.started + 1
        while fsyncs.completed < needed:
            if fsyncs.running:
                fsyncs.condition.wait()
                continue
            fsyncs.running = True
            fsyncs.started += 1
            generation = fsyncs.started
            fsyncs.condition.release()
            try:
                os.fsync(descriptor)
            finally:
                fsyncs.condition.acquire()
                fsyncs.running = False
                fsyncs.condition.notify_all()
            fsyncs.completed = generation


@contextmanager
def _shared(descriptor: int) -> Iterator[_DirectoryFsyncs]:
    status = os.fstat(descriptor)
    key = (status.st_dev, status.st_ino)
    with _registry_lock:
        fsyncs = _directories.setdefault(key, _DirectoryFsyncs())
        fsyncs.users += 1
    try:
        yield fsyncs
    finally:
        with _registry_lock:
            fsyncs.users -= 1
            if not fsyncs.users:
                del _directories[key]
