"""Progress of a dataset's copy, as a few log lines however many files it has.

Every log line of an op becomes an event in Dagster's event log (a row written to Postgres), so one
line per file would cost more than copying a small file. Finished files are gathered and reported
together at most every `interval` seconds; each copy step's metadata keeps the full per-file table of its batch.
`LIVE_COPIES` counts files and bytes as they go, for a live view in the process that runs the copy.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.storage import CopyOutcome
from bpsync_dagster.storage.transfer import SERVER_SIDE

FILES_NAMED_PER_LINE = 20


class CopyProgress:
    """Collects finished files and says, now and then, how far the copy of `scope` (a dataset, or a
    batch of it) is."""

    def __init__(
        self,
        scope: str,
        total_files: int,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scope = scope
        self._total_files = total_files
        self._interval = interval
        self._clock = clock
        self._last_report = clock()
        self._unreported: list[CopyOutcome] = []
        self._finished = 0
        self._bytes = 0

    def add(self, outcome: CopyOutcome) -> str | None:
        """Record a finished file; a progress line when one is due."""
        self._unreported.append(outcome)
        self._finished += 1
        self._bytes += outcome.bytes_written
        if self._clock() - self._last_report >= self._interval:
            return self.flush()
        return None

    def flush(self) -> str | None:
        """The line for the files not reported yet, if any."""
        if not self._unreported:
            return None
        named = "; ".join(_describe(outcome) for outcome in self._unreported[:FILES_NAMED_PER_LINE])
        more = len(self._unreported) - FILES_NAMED_PER_LINE
        if more > 0:
            named += f"; and {more} more (see the files table of copy_files)"
        self._unreported.clear()
        self._last_report = self._clock()
        return (
            f"{self._scope}: {self._finished} of {self._total_files} files in place, "
            f"{self._bytes} bytes copied: {named}"
        )


def _describe(outcome: CopyOutcome) -> str:
    action = "already in place" if outcome.skipped else f"copied {outcome.bytes_written} bytes"
    if outcome.mode == SERVER_SIDE and not outcome.skipped:
        action += f" ({SERVER_SIDE})"
    return f"{escaped(outcome.accession_id)} {action} at {escaped(outcome.destination)}"


@dataclass(frozen=True)
class CopyTotals:
    """How far the copy steps running in this process are, over all their files."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


class _Batch:
    def __init__(self, files: int, total_bytes: int, written: Callable[[], int]) -> None:
        self.files_total = files
        self.bytes_total = total_bytes
        self.files_done = 0
        self.bytes_skipped = 0
        self._written = written
        self._written_before = written()

    def bytes_done(self) -> int:
        return self.bytes_skipped + self._written() - self._written_before

    def freeze(self) -> None:
        """Keep the count as it is now, and no longer what it was counted with."""
        written = self._written()
        self._written = lambda: written


class LiveCopies:
    """The copy steps of this process and how far each is, for `bpsync sync`'s live line (with the
    in-process executor, its copy runs in `bpsync`'s process): over the whole sync when its batches
    run one after another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}

    @contextmanager
    def copying(self, step: str, files: int, total_bytes: int, written: Callable[[], int]) -> Iterator[None]:
        """A copy step copies `files` files of `total_bytes` in all while inside; `written` counts the
        bytes it wrote. Its figures stay in the totals once it is done, until the step runs again."""
        batch = _Batch(files, total_bytes, written)
        with self._lock:
            self._batches[step] = batch
        try:
            yield
        finally:
            with self._lock:
                batch.freeze()

    def finished(self, step: str, outcome: CopyOutcome) -> None:
        with self._lock:
            batch = self._batches.get(step)
            if batch is not None:
                batch.files_done += 1
                if outcome.skipped:
                    batch.bytes_skipped += outcome.object_size

    def totals(self) -> CopyTotals:
        with self._lock:
            batches = list(self._batches.values())
            return CopyTotals(
                sum(batch.files_done for batch in batches),
                sum(batch.files_total for batch in batches),
                sum(batch.bytes_done() for batch in batches),
                sum(batch.bytes_total for batch in batches),
            )


LIVE_COPIES = LiveCopies()
