"""Progress lines of a dataset's copy: every file named once, few lines however many files."""

from bpsync_dagster.jobs.progress import FILES_NAMED_PER_LINE, CopyProgress, CopyTotals, LiveCopies
from bpsync_dagster.storage import CopyOutcome


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def outcome(number: int, skipped: bool = False) -> CopyOutcome:
    return CopyOutcome(f"F-{number}", f"/sync/f{number}.c4gh", 10, 0 if skipped else 10, 0.1, skipped, verified=True)


def test_files_finishing_together_share_one_line_and_the_rest_comes_with_the_flush() -> None:
    clock = FakeClock()
    progress = CopyProgress("dataset DS-1", 3, interval=2.0, clock=clock)

    assert progress.add(outcome(1)) is None
    clock.now += 2.5
    line = progress.add(outcome(2, skipped=True))
    assert line == (
        "dataset DS-1: 2 of 3 files in place, 10 bytes copied: "
        "F-1 copied 10 bytes at /sync/f1.c4gh; F-2 already in place at /sync/f2.c4gh"
    )
    assert progress.add(outcome(3)) is None
    assert (
        progress.flush() == "dataset DS-1: 3 of 3 files in place, 20 bytes copied: F-3 copied 10 bytes at /sync/f3.c4gh"
    )
    assert progress.flush() is None


def test_a_long_line_names_the_first_files_and_counts_the_rest() -> None:
    progress = CopyProgress("dataset DS-2", 2000, interval=3600.0, clock=FakeClock())
    assert all(progress.add(outcome(number)) is None for number in range(2000))

    line = progress.flush()

    assert line is not None and line.startswith("dataset DS-2: 2000 of 2000 files in place, 20000 bytes copied: F-0 ")
    assert line.count(" copied 10 bytes at ") == FILES_NAMED_PER_LINE
    assert line.endswith(f"and {2000 - FILES_NAMED_PER_LINE} more (see the files table of copy_files)")


def test_a_slow_copy_reports_each_file_as_it_finishes() -> None:
    clock = FakeClock()
    progress = CopyProgress("dataset DS-3", 3, interval=2.0, clock=clock)
    lines = []
    for number in range(3):
        clock.now += 60
        lines.append(progress.add(outcome(number)))

    for count, line in enumerate(lines, start=1):
        assert line is not None
        assert line.startswith(f"dataset DS-3: {count} of 3 files in place, {10 * count} bytes copied: F-{count - 1} ")
    assert progress.flush() is None


def test_live_copies_count_the_bytes_written_and_the_files_of_each_step_and_keep_them() -> None:
    live = LiveCopies()
    written = [1000]  # the step's bandwidth counter, already past earlier copies

    with live.copying("copy_files[0]", files=3, total_bytes=30, written=lambda: written[0]):
        assert live.totals() == CopyTotals(0, 3, 0, 30)
        written[0] += 7
        assert live.totals() == CopyTotals(0, 3, 7, 30)
        written[0] += 3
        live.finished("copy_files[0]", outcome(1))
        live.finished("copy_files[0]", outcome(2, skipped=True))
        assert live.totals() == CopyTotals(2, 3, 20, 30)
    written[0] += 500  # another step's bytes on the same counter

    assert live.totals() == CopyTotals(2, 3, 20, 30)
    with live.copying("copy_files[1]", files=1, total_bytes=5, written=lambda: written[0]):
        written[0] += 5
        assert live.totals() == CopyTotals(2, 4, 25, 35)
    with live.copying("copy_files[0]", files=3, total_bytes=30, written=lambda: written[0]):  # a retry
        assert live.totals() == CopyTotals(0, 4, 5, 35)
