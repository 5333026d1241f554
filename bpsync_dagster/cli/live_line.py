"""A live progress line for `bpsync sync` on a terminal: redrawn in place with `\\r`, while the lines
printed and logged meanwhile go above it."""

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from bpsync_dagster.configuration.logs import SERVICE_LOGGER
from bpsync_dagster.jobs.progress import CopyTotals

CLEAR_TO_END = "\x1b[K"
REDRAW_SECONDS = 0.5
RATE_WINDOW_SECONDS = 5.0
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(count: float) -> str:
    """`count` bytes in binary units, three significant digits: `812 B`, `1.50 MiB`, `23.4 GiB`."""
    unit = 0
    while count >= 1024 and unit < len(UNITS) - 1:
        count /= 1024
        unit += 1
    if unit == 0:
        return f"{count:.0f} B"
    return f"{count:.3g} {UNITS[unit]}" if count < 1000 else f"{count:.0f} {UNITS[unit]}"


def duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour."""
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class CopyLine:
    """The text of the live line while a copy step runs: bytes written of the batch's, the rate over
    the last RATE_WINDOW_SECONDS, files done and the time left at that rate. Where the copy runs in
    another process (a scale-out executor) `totals` stays empty and the line shows the time it runs."""

    def __init__(self, totals: Callable[[], CopyTotals], clock: Callable[[], float] = time.monotonic) -> None:
        self._totals = totals
        self._clock = clock
        self._step: str | None = None
        self._started = 0.0
        self._samples: deque[tuple[float, int]] = deque()

    def begin(self, step: str) -> None:
        self._step, self._started = step, self._clock()
        self._samples.clear()

    def end(self) -> None:
        self._step = None

    def render(self) -> str | None:
        if self._step is None:
            return None
        now, totals = self._clock(), self._totals()
        if not totals.files_total:
            # Before the copy begins, or while it runs in another process.
            return f"  {self._step}: running for {duration(now - self._started)}"
        self._samples.append((now, totals.bytes_done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_SECONDS:
            self._samples.popleft()
        then, bytes_then = self._samples[0]
        rate = (totals.bytes_done - bytes_then) / (now - then) if now > then else 0.0
        left = max(totals.bytes_total - totals.bytes_done, 0)
        eta = duration(left / rate) if rate > 0 else "--:--"
        return (
            f"  {self._step}: {human_bytes(totals.bytes_done)} of {human_bytes(totals.bytes_total)}, "
            f"{human_bytes(rate)}/s, {totals.files_done} of {totals.files_total} files, ETA {eta}"
        )


class LiveLine:
    """Draws `render()` (nothing while it is None) at the bottom of the terminal `stream` every
    REDRAW_SECONDS. Lines printed with `print`, and what is written to `sys.stderr` (the service's log
    lines: `sys.stderr` and the log handlers already on it are pointed through this while it is open,
    and a handler made meanwhile, as loading the definitions does, takes `sys.stderr`), first clear it,
    and it is drawn again below them.

    Both go to copies of the terminal's descriptors taken on entering: while a step runs, Dagster points
    descriptors 1 and 2 into the step's captured-output files and copies those back to the terminal a
    second later, which would put the live line into the files and the log lines after it."""

    def __init__(self, stream: TextIO, render: Callable[[], str | None], interval: float = REDRAW_SECONDS) -> None:
        self._original_stream = stream
        self._stream = stream
        self._render = render
        self._interval = interval
        self._lock = threading.RLock()
        self._shown = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw_until_stopped, name="bpsync-live-line", daemon=True)
        self._stderr = sys.stderr
        self._above: _AboveTheLine | None = None

    def __enter__(self) -> "LiveLine":
        self._stream = _copy_of(self._original_stream)
        self._above = _AboveTheLine(self, self._stderr, _copy_of(self._stderr))
        sys.stderr = self._above  # type: ignore[assignment]
        self._point_handlers(self._stderr, self._above)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._clear()
            self._render = lambda: None
        sys.stderr = self._stderr
        self._point_handlers(self._above, self._stderr)
        assert self._above is not None
        self._above.terminal.close()
        self._stream.close()
        self._stream = self._original_stream

    @staticmethod
    def _point_handlers(old: object, new: object) -> None:
        for handler in logging.getLogger(SERVICE_LOGGER).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)

    def print(self, text: str) -> None:
        with self._lock:
            self._clear()
            self._stream.write(text + "\n")
            self._draw()

    def redraw(self) -> None:
        with self._lock:
            self._draw()

    def _redraw_until_stopped(self) -> None:
        while not self._stop.wait(self._interval):
            self.redraw()

    def _draw(self) -> None:
        text = self._render()
        if text is None:
            self._clear()
            return
        self._stream.write("\r" + text[: self._columns() - 1] + CLEAR_TO_END)
        self._stream.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self._stream.write("\r" + CLEAR_TO_END)
            self._stream.flush()
            self._shown = False

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns
        except (OSError, ValueError):
            columns = 0
        return columns or 80


def _copy_of(stream: TextIO) -> TextIO:
    """A line-buffered text stream on a copy of `stream`'s descriptor."""
    return os.fdopen(
        os.dup(stream.fileno()), "w", buffering=1, encoding=stream.encoding or "utf-8", errors="backslashreplace"
    )


class _AboveTheLine:
    """`stderr`, written to `terminal` (a copy of its descriptor): clears the live line before each
    write and draws it again after each flush. Everything else, its descriptor included (which
    Dagster's capture of a step's output points elsewhere), is `stderr`'s."""

    def __init__(self, line: LiveLine, stderr: TextIO, terminal: TextIO) -> None:
        self._line = line
        self._stderr = stderr
        self.terminal = terminal

    def write(self, text: str) -> int:
        with self._line._lock:
            self._line._clear()
            return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()
        self._line.redraw()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stderr, name)
