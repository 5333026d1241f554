"""Reading a stream one step ahead of its consumer, so that reading overlaps hashing and writing."""

import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO

_POLL_SECONDS = 0.1


def read_ahead(stream: BinaryIO, chunk_size: int, depth: int = 2) -> Iterator[bytes]:
    """The stream's chunks, read by a helper thread at most `depth` chunks ahead.

    A read error is raised in the consumer. Close the generator (e.g. `contextlib.closing`) when
    stopping early: the helper thread then ends after its current read.
    """
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: bytes | BaseException) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            while not stop.is_set():
                chunk = stream.read(chunk_size)
                hand_over(chunk)
                if not chunk:
                    return
        except BaseException as error:
            hand_over(error)

    reader = threading.Thread(target=read, name="read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        reader.join()
