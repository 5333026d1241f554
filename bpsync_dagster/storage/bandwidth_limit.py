"""A cap on the bytes per second one sync writes to sync storage, shared by the files it copies at once."""

import threading
import time
from collections.abc import Callable

BURST_SECONDS = 1.0


class BandwidthLimit:
    """A token bucket of `bytes_per_second` (0: no limit) that every write of a sync pays into first.

    `take(n)` reserves `n` bytes at once and then sleeps, outside the lock, until the bucket has earned
    them, so that concurrent writers are served in the order they asked and the bytes let through by
    time t after the first write never exceed `bytes_per_second` × t: the bucket starts empty at the first
    `take`, and saves at most BURST_SECONDS of the rate while nobody writes. `taken` counts every byte let through once its wait is
    over (also without a limit): how far the sync's writes are."""

    def __init__(
        self,
        bytes_per_second: int,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bytes_per_second = bytes_per_second
        self._burst = burst_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The moment by which every byte granted so far is paid for; earlier than now when the bucket holds tokens.
        self._paid_until: float | None = None
        self._taken = 0

    @property
    def taken(self) -> int:
        with self._lock:
            return self._taken

    def take(self, size: int) -> float:
        """Wait until `size` more bytes may be written; the seconds waited."""
        wait = 0.0
        if self.bytes_per_second:
            with self._lock:
                now = self._clock()
                paid_until = now if self._paid_until is None else max(self._paid_until, now - self._burst)
                self._paid_until = paid_until + size / self.bytes_per_second
                wait = max(self._paid_until - now, 0.0)
            if wait:
                self._sleep(wait)
        with self._lock:
            self._taken += size
        return wait
