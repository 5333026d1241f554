"""The token bucket behind `sync.copy.bandwidthLimit`: its arithmetic on a clock of its own, and
writers in several threads sharing it."""

import threading
import time

import pytest

from bpsync_dagster.storage.bandwidth_limit import BandwidthLimit


class Clock:
    """Time that passes only when the limiter sleeps, or when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limit(rate: int, clock: Clock) -> BandwidthLimit:
    return BandwidthLimit(rate, clock=clock, sleep=clock.sleep)


def test_the_bucket_starts_empty_at_the_first_write_so_the_first_bytes_wait_their_share() -> None:
    clock = Clock()
    bucket = limit(1000, clock)
    clock.now += 30  # set up long before the first write

    assert bucket.take(500) == 0.5
    assert bucket.take(1500) == 1.5
    assert clock.now == 1032.0
    assert bucket.taken == 2000


def test_bytes_written_by_any_moment_never_exceed_the_rate_times_the_time() -> None:
    clock = Clock()
    bucket = limit(4096, clock)
    start = clock.now

    for size in [100, 7000, 1, 65536, 4096, 333] * 5:
        bucket.take(size)
        assert bucket.taken <= 4096 * (clock.now - start) + 1e-6

    assert bucket.taken == 4096 * (clock.now - start)


def test_an_idle_bucket_saves_at_most_one_second_of_the_rate() -> None:
    clock = Clock()
    bucket = limit(1000, clock)
    bucket.take(0)
    clock.now += 60

    assert bucket.take(1000) == 0.0  # one second's worth, saved while idle
    assert bucket.take(1000) == 1.0  # the next is paid for as it is earned
    clock.now += 0.25
    assert bucket.take(1000) == pytest.approx(0.75)


def test_time_spent_writing_counts_toward_the_next_bytes() -> None:
    clock = Clock()
    bucket = limit(1000, clock)

    assert bucket.take(1000) == 1.0
    clock.now += 0.4  # the write of those bytes took 0.4 s
    assert bucket.take(1000) == pytest.approx(0.6)


def test_without_a_limit_nothing_waits_and_the_bytes_are_counted() -> None:
    clock = Clock()
    bucket = limit(0, clock)

    assert [bucket.take(size) for size in (10**9, 5, 10**12)] == [0.0, 0.0, 0.0]
    assert clock.slept == [] and bucket.taken == 10**12 + 10**9 + 5


def test_writers_in_several_threads_share_one_rate() -> None:
    """Eight threads take 64 KiB pieces from one bucket of 2 MiB/s: together 1 MiB, half a second."""
    bucket = BandwidthLimit(2 * 1024**2)
    start = time.monotonic()

    def write() -> None:
        for _ in range(2):
            bucket.take(64 * 1024)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    elapsed = time.monotonic() - start
    assert bucket.taken == 1024**2
    assert 0.5 <= elapsed < 0.75, elapsed
