"""The delaying proxy against the real RabbitMQ: what the broker sends arrives late and spaced, what
the client sends arrives unchanged, and in frame mode only the chosen consumers are slow."""

import time
import uuid
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from bpsync_dagster_tests.support.delaying_proxy import DelayingProxy, Pacing
from bpsync_dagster_tests.support.rabbitmq import SHARED_BROKER
from bpsync_dagster_tests.support.streams import connection_parameters


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(SHARED_BROKER)
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
    channel.confirm_delivery()
    for number in range(3):
        channel.basic_publish("", name, f"message {number}".encode())
    yield name
    channel.queue_delete(name)
    connection.close()


def _arrivals(channel: BlockingChannel, stream: str, start: object, count: int) -> list[tuple[int, float, bytes]]:
    """(offset, seconds after the consume was sent, body) of the first `count` deliveries from `start`."""
    channel.basic_qos(prefetch_count=count)
    started = time.monotonic()
    arrivals = []
    for method, properties, body in channel.consume(
        stream, arguments={"x-stream-offset": start}, inactivity_timeout=15
    ):
        assert method is not None, "no delivery within 15 s"
        arrivals.append((int(properties.headers["x-stream-offset"]), time.monotonic() - started, body))
        channel.basic_ack(method.delivery_tag)
        if len(arrivals) == count:
            return arrivals
    return arrivals


def test_the_brokers_answers_arrive_late_and_spaced_and_the_clients_frames_unchanged(stream: str) -> None:
    with DelayingProxy(5672, Pacing(delay=0.5, gap=0.3, by_frame=True)) as proxy:
        started = time.monotonic()
        connection = pika.BlockingConnection(connection_parameters(proxy.port))
        # Three answers (start, tune, open-ok), each at least half a second late.
        assert time.monotonic() - started >= 1.5
        publisher = connection.channel()
        publisher.confirm_delivery()
        publisher.basic_publish("", stream, b"through the proxy")
        arrivals = _arrivals(connection.channel(), stream, "first", 4)
        connection.close()

    assert [(offset, body) for offset, _, body in arrivals] == [
        (0, b"message 0"),
        (1, b"message 1"),
        (2, b"message 2"),
        (3, b"through the proxy"),
    ]
    seconds = [at for _, at, _ in arrivals]
    # A delivery is three frames, each handed on 0.3 s after the one before.
    assert seconds[0] >= 0.5
    assert all(later - earlier >= 0.85 for earlier, later in zip(seconds, seconds[1:], strict=False))
    assert proxy.connections == 1


def test_in_frame_mode_only_the_chosen_consumers_are_slow(stream: str) -> None:
    slow_last = DelayingProxy(5672, Pacing(delay=3.0, gap=0.0), slow_consumers=lambda offset: offset == "last")
    with slow_last as proxy, pika.BlockingConnection(connection_parameters(proxy.port)) as connection:
        prompt = _arrivals(connection.channel(), stream, "first", 3)
        slow = _arrivals(connection.channel(), stream, "last", 1)
        proxy.slowing = False
        after = _arrivals(connection.channel(), stream, "last", 1)

    assert [offset for offset, _, _ in prompt] == [0, 1, 2] and prompt[-1][1] < 1.0
    assert [(offset, at) for offset, at, _ in slow] == [(2, pytest.approx(3.0, abs=0.5))]
    assert after[0][1] < 1.0
