"""Progress of a dataset's copy, as a few log lines however many files it has.

Every log line of an op becomes an event in Dagster's event log (a row written to Postgres), so one
line per file would cost more than copying a small file. Finished files are gathered and reported
together at most every `interval` seconds; each copy step's metadata keeps the full per-file table of its batch.
"""

import time
from collections.abc import Callable

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
