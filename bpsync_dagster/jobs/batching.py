"""Grouping a dataset's files into copy batches, by bytes and by count; each batch is one copy step.

Pure: no Dagster, no I/O. Files keep their order; a batch is closed when the next file would take it
over either limit, so a file larger than `max_bytes` is a batch of its own.
"""

from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1024**2
GIB = 1024**3
MIN_BATCH_BYTES = MIB
MAX_BATCH_BYTES = 1024 * GIB
MAX_BATCH_FILES = 100_000


@dataclass(frozen=True)
class BatchLimits:
    """At most `max_files` files and `max_bytes` bytes per batch (a single larger file excepted)."""

    max_bytes: int
    max_files: int

    def __post_init__(self) -> None:
        if not MIN_BATCH_BYTES <= self.max_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes is {self.max_bytes}: must be {MIN_BATCH_BYTES} to {MAX_BATCH_BYTES}")
        if not 1 <= self.max_files <= MAX_BATCH_FILES:
            raise ValueError(f"max_batch_files is {self.max_files}: must be 1 to {MAX_BATCH_FILES}")


# One process copies every batch in turn: a single batch is fastest (no step boundaries).
ONE_BATCH = BatchLimits(MAX_BATCH_BYTES, MAX_BATCH_FILES)
# Batches on several machines: large enough that a step's start-up (about a second) is small beside
# its copy, small enough that a dataset of a few GiB spreads over the workers.
SPREAD_BATCHES = BatchLimits(GIB, 250)


def plan_batches(sizes: Sequence[int], limits: BatchLimits) -> list[range]:
    """Consecutive index ranges of `sizes` (bytes of each file, in order), one per batch."""
    batches: list[range] = []
    start, held = 0, 0
    for index, size in enumerate(sizes):
        count = index - start
        if count and (count >= limits.max_files or held + size > limits.max_bytes):
            batches.append(range(start, index))
            start, held = index, 0
        held += size
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches
