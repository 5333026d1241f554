"""A limit on the bytes one sync holds in copy buffers, shared by the files it copies at once."""

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class ByteBudget:
    """Grants byte counts up to `limit` in all, in the order they were asked for.

    A request larger than `limit` is granted once nothing else is held, so that a single part larger
    than the limit still proceeds, alone. `peak` is the most ever held at once.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.peak = 0
        self._held = 0
        self._waiting: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        with self._changed:
            return self._held

    @property
    def waiting(self) -> int:
        """Requests waiting for room."""
        with self._changed:
            return len(self._waiting)

    def _fits(self, size: int) -> bool:
        return self._held == 0 or self._held + size <= self.limit

    def _take(self, size: int) -> None:
        self._held += size
        self.peak = max(self.peak, self._held)

    def acquire(self, size: int) -> None:
        """Wait until `size` bytes fit, after every earlier request."""
        turn = object()
        with self._changed:
            self._waiting.append(turn)
            try:
                self._changed.wait_for(lambda: self._waiting[0] is turn and self._fits(size))
                self._take(size)
            finally:
                self._waiting.remove(turn)
                self._changed.notify_all()

    def try_acquire(self, size: int) -> bool:
        """Take `size` bytes if they fit now and nobody waits, without waiting."""
        with self._changed:
            if self._waiting or self._held + size > self.limit:
                return False
            self._take(size)
            return True

    def release(self, size: int) -> None:
        with self._changed:
            self._held -= size
            self._changed.notify_all()

    @contextmanager
    def holding(self, size: int) -> Iterator[None]:
        self.acquire(size)
        try:
            yield
        finally:
            self.release(size)
