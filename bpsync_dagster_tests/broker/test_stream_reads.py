"""Stream reads of a broker session against the real RabbitMQ: the tail is the greatest offset of the
last chunk, and the time a read waits grows with the time the broker takes to answer."""

import time
import uuid
from collections.abc import Iterator
from functools import partial

import pika
import pytest

from bpsync_dagster.broker.client import IDLE_FLOOR_SECONDS, BrokerSession
from bpsync_dagster.configuration import BrokerSettings
from bpsync_dagster_tests.support.daemon import wait_until
from bpsync_dagster_tests.support.delaying_proxy import DelayingProxy, Pacing
from bpsync_dagster_tests.support.rabbitmq import SHARED_BROKER


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"reads-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(SHARED_BROKER) as connection:
        connection.channel().queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
    yield name
    with pika.BlockingConnection(SHARED_BROKER) as connection:
        connection.channel().queue_delete(name)


def _settings(stream: str, port: int = 5672) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=port, user="guest", password="guest", queue=stream)


def test_the_tail_is_the_last_offset_of_the_stream_and_none_while_it_is_empty(stream: str) -> None:
    with BrokerSession(_settings(stream)) as session:
        assert session.tail_offset(time.monotonic() + 10) is None
    last_chunk = _publish_until_the_last_chunk_holds_several(stream)

    with BrokerSession(_settings(stream)) as session:
        assert session.tail_offset(time.monotonic() + 10) == max(last_chunk)


def _publish_until_the_last_chunk_holds_several(stream: str) -> list[int]:
    """Publish bursts from several connections until the chunk `last` starts at holds more than one
    message (how the broker cuts chunks depends on timing); that chunk's offsets."""
    published = 0
    for _ in range(20):
        publishers = [pika.BlockingConnection(SHARED_BROKER) for _ in range(4)]
        channels = [connection.channel() for connection in publishers]
        for number in range(200):
            for channel in channels:
                channel.basic_publish("", stream, f"message {number}".encode())
        for connection in publishers:
            connection.close()
        published += 200 * len(publishers)
        last = published - 1
        offsets = wait_until(partial(_last_chunk_ending_at, stream, last), 30, f"offset {last} in the last chunk")
        if len(offsets) > 1:
            return offsets
    raise AssertionError("no burst ended in a chunk of several messages")


def _last_chunk_ending_at(stream: str, offset: int) -> list[int] | None:
    """The offsets of the chunk `last` starts at, once it is the one that holds `offset`."""
    with BrokerSession(_settings(stream)) as session:
        deliveries = session.read_stream("last", 1000, time.monotonic() + 10)
        offsets = [delivery.offset for delivery in deliveries if delivery.offset is not None]
    return offsets if offsets and max(offsets) == offset else None


def test_a_read_waits_longer_on_a_broker_that_answers_late(stream: str) -> None:
    with BrokerSession(_settings(stream)) as prompt:
        assert prompt.patience < IDLE_FLOOR_SECONDS + 0.2
    with DelayingProxy(5672, Pacing(delay=1.0, gap=0.0)) as proxy, BrokerSession(_settings(stream, proxy.port)) as late:
        assert late.patience >= IDLE_FLOOR_SECONDS + 2 * 1.0
        started = time.monotonic()
        assert late.read_stream("first", 10, time.monotonic() + 30) == []
        # Opening the read's channel, its qos and its consume take a second each; then it waits.
        assert time.monotonic() - started >= 3 + late.patience - 0.1


def test_a_read_for_a_message_known_to_exist_waits_for_it_on_a_broker_that_only_delivers_late(stream: str) -> None:
    with pika.BlockingConnection(SHARED_BROKER) as connection:
        channel = connection.channel()
        for number in range(3):
            channel.basic_publish("", stream, f"message {number}".encode())
    delivers_late = Pacing(delay=2.5, gap=0.0, only_deliveries=True)
    with DelayingProxy(5672, delivers_late) as proxy, BrokerSession(_settings(stream, proxy.port)) as session:
        assert session.patience < IDLE_FLOOR_SECONDS + 0.5  # every answer but a delivery is prompt
        anchored = session.read_stream(0, 3, time.monotonic() + 30, expect_delivery=True)
        # The delivery's lateness now counts: the next read waits for a late broker.
        assert session.patience >= IDLE_FLOOR_SECONDS + 2 * 2.5
        later = session.read_stream(1, 2, time.monotonic() + 30)

    assert [delivery.offset for delivery in anchored] == [0, 1, 2]
    assert [delivery.offset for delivery in later] == [1, 2]
