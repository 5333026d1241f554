"""A live progress line for `bpsync sync` on a terminal: redrawn in place with `\\r`, while the lines
printed and logged meanwhile go above it."""

import logging
import os
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
    REDRAW_SECONDS. Lines printed with `print`, and the service's log lines (its stderr handler is
    pointed through this while it is open), first clear it, and it is drawn again below them."""

    def __init__(self, stream: TextIO, render: Callable[[], str | None], interval: float = REDRAW_SECONDS) -> None:
        self._stream = stream
        self._render = render
        self._interval = interval
        self._lock = threading.RLock()
        self._shown = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._redraw_until_stopped, name="bpsync-live-line", daemon=True)
        self._handlers: list[tuple[logging.StreamHandler, TextIO]] = []

    def __enter__(self) -> "LiveLine":
        for handler in logging.getLogger(SERVICE_LOGGER).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                self._handlers.append((handler, handler.stream))
                handler.setStream(_AboveTheLine(self, handler.stream))  # type: ignore[arg-type]
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._clear()
        for handler, stream in self._handlers:
            handler.setStream(stream)

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


class _AboveTheLine:
    """A log handler's stream that clears the live line before each write."""

    def __init__(self, line: LiveLine, target: TextIO) -> None:
        self._line = line
        self._target = target

    def write(self, text: str) -> int:
        with self._line._lock:
            self._line._clear()
            return self._target.write(text)

    def flush(self) -> None:
        self._target.flush()
        self._line.redraw()
