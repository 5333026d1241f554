"""The text of `bpsync sync`'s live line, and its drawing: on a clock and a stream of the test's own."""

import io

from bpsync_dagster.cli.live_line import CopyLine, LiveLine, duration, human_bytes
from bpsync_dagster.jobs.progress import CopyTotals

MiB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_sizes_and_durations_read_as_people_write_them() -> None:
    assert [human_bytes(count) for count in (0, 812, 1536, 10 * MiB, 1023.9 * MiB, 3.5 * 1024**4)] == [
        "0 B",
        "812 B",
        "1.5 KiB",
        "10 MiB",
        "1024 MiB",
        "3.5 TiB",
    ]
    assert [duration(seconds) for seconds in (0, 59.4, 61, 3599, 3600, 90061)] == [
        "0:00",
        "0:59",
        "1:01",
        "59:59",
        "1:00:00",
        "25:01:01",
    ]


def test_the_line_shows_bytes_rate_files_and_the_time_left_at_the_recent_rate() -> None:
    clock = Clock()
    totals = CopyTotals(0, 8, 0, 100 * MiB)
    line = CopyLine(lambda: totals, clock)

    assert line.render() is None
    line.begin("copy_files[0]")
    assert line.render() == "  copy_files[0]: 0 B of 100 MiB, 0 B/s, 0 of 8 files, ETA --:--"
    clock.now += 2
    totals = CopyTotals(1, 8, 20 * MiB, 100 * MiB)
    assert line.render() == "  copy_files[0]: 20 MiB of 100 MiB, 10 MiB/s, 1 of 8 files, ETA 0:08"
    clock.now += 10  # the rate is measured over the last five seconds or so, not since the start
    totals = CopyTotals(3, 8, 30 * MiB, 100 * MiB)
    assert line.render() == "  copy_files[0]: 30 MiB of 100 MiB, 1 MiB/s, 3 of 8 files, ETA 1:10"
    line.end()
    assert line.render() is None


def test_a_copy_in_another_process_shows_how_long_it_runs() -> None:
    clock = Clock()
    line = CopyLine(lambda: CopyTotals(0, 0, 0, 0), clock)
    line.begin("copy_files[2]")
    clock.now += 75

    assert line.render() == "  copy_files[2]: running for 1:15"


def test_printed_lines_clear_the_live_line_and_it_is_drawn_again_below() -> None:
    stream = io.StringIO()
    text = ["live 1"]
    line = LiveLine(stream, lambda: text[0])

    line.redraw()
    line.print("  a step done")
    text[0] = None  # type: ignore[call-overload]
    line.print("  another")

    assert stream.getvalue() == "\rlive 1\x1b[K\r\x1b[K  a step done\n\rlive 1\x1b[K\r\x1b[K  another\n"
