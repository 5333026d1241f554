"""Reading ahead: every chunk in order, read errors reach the consumer, an early stop ends the reader."""

import io
import threading
from contextlib import closing

import pytest

from bpsync_dagster.storage.read_ahead import read_ahead


def test_every_chunk_arrives_in_order() -> None:
    data = bytes(range(256)) * 1000

    chunks = list(read_ahead(io.BytesIO(data), 4096))

    assert b"".join(chunks) == data
    assert {len(chunk) for chunk in chunks[:-1]} == {4096}


class FailingStream(io.RawIOBase):
    def __init__(self, good_reads: int) -> None:
        self.reads = 0
        self.good_reads = good_reads

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > self.good_reads:
            raise OSError(5, "Input/output error")
        return b"x" * size


def test_a_read_error_is_raised_in_the_consumer_after_the_chunks_before_it() -> None:
    received = []
    with pytest.raises(OSError, match="Input/output error"):
        for chunk in read_ahead(FailingStream(good_reads=3), 10):
            received.append(chunk)

    assert received == [b"x" * 10] * 3


class EndlessStream(io.RawIOBase):
    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return b"y" * size


def test_stopping_early_ends_the_reader_without_reading_the_rest() -> None:
    stream = EndlessStream()
    with closing(read_ahead(stream, 10, depth=2)) as chunks:
        assert next(chunks) == b"y" * 10

    assert not any(thread.name == "read-ahead" for thread in threading.enumerate())
    assert stream.reads <= 5
