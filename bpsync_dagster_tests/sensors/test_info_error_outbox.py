"""The outbox of info-errors the broker has not taken: one the broker keeps refusing cannot hold up the
rest, and when too many wait, reading stops with a clear error and none of them is lost (real RabbitMQ,
the service's broker user, the key-value store of a real Dagster instance on Postgres)."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest

from bpsync_dagster.broker.client import BrokerSession
from bpsync_dagster.configuration import BrokerSettings
from bpsync_dagster.sensors import info_errors
from bpsync_dagster.sensors.info_errors import InfoError, InfoErrorOutbox, TooManyWaiting, outbox_key
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import SERVICE_PASSWORD, SERVICE_USER, Topology, topology

logger = logging.getLogger(__name__)


def _error(key: str) -> InfoError:
    return InfoError(key, json.dumps({"error": "test", "key": key}).encode(), f"corr-{key}")


@contextmanager
def _outbox_of(node: Node, names: Topology) -> Iterator[tuple[InfoErrorOutbox, BrokerSession]]:
    """A fresh outbox over what the earlier ones stored, as each sensor tick makes one, and its session."""
    settings = BrokerSettings(
        host="127.0.0.1",
        port=5672,
        user=SERVICE_USER,
        password=SERVICE_PASSWORD,
        queue=names.mapping_queue,
        exchange=names.exchange,
    )
    with BrokerSession(settings) as session:
        yield InfoErrorOutbox(node.instance().run_storage, f"{node.prefix}-outbox", logger), session


@contextmanager
def _bounded_error_queue(names: Topology) -> Iterator[str]:
    """Route `error` only to a queue that holds one message and refuses (nacks) publishes beyond it."""
    bounded = f"{names.error_queue}-bounded"
    with names.channel() as channel:
        channel.queue_unbind(names.error_queue, names.exchange, "error")
        channel.queue_declare(bounded, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        channel.queue_bind(bounded, names.exchange, "error")
    try:
        yield bounded
    finally:
        with names.channel() as channel:
            channel.queue_delete(bounded)


def _take_one(names: Topology, queue: str) -> str | None:
    """The correlation id of the message on `queue`, removed from it."""
    with names.channel() as channel:
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
    return None if method is None else properties.correlation_id


@pytest.fixture
def node(sensor_node: Node) -> Iterator[Node]:
    yield sensor_node
    store = sensor_node.instance().run_storage
    key = outbox_key(f"{sensor_node.prefix}-outbox")
    store.set_cursor_values({key: "", **{f"{key}/{slot}": "" for slot in range(10)}})


def test_an_info_error_the_broker_keeps_refusing_goes_to_the_back(node: Node) -> None:
    with topology(node.prefix, "stream") as names, _bounded_error_queue(names) as bounded:
        with names.channel() as channel:
            channel.basic_publish("", bounded, b"filler", pika.BasicProperties(correlation_id="filler"))
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.send(session, _error("a")) is False
            assert "refused (nack)" in (outbox.refusal or "")
            assert outbox.send(session, _error("b")) is False
            assert outbox.waiting == 2
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.retry(session) == 0

        assert _take_one(names, bounded) == "filler"
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.retry(session) == 1
            assert outbox.waiting == 1
        assert _take_one(names, bounded) == "corr-b"
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.retry(session) == 1
            assert outbox.waiting == 0
        assert _take_one(names, bounded) == "corr-a"
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.send(session, _error("a")) is True
            assert outbox.retry(session) == 0
        assert _take_one(names, bounded) is None


def test_when_too_many_wait_reading_stops_and_none_is_lost(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(info_errors, "MAX_WAITING", 5)
    with topology(node.prefix, "stream") as names:
        with names.channel() as channel:
            channel.queue_unbind(names.error_queue, names.exchange, "error")
        with _outbox_of(node, names) as (outbox, session):
            for number in range(5):
                assert outbox.send(session, _error(f"m{number}")) is False
            with pytest.raises(TooManyWaiting, match=r"^5 info-errors wait for the broker \(no queue is bound"):
                outbox.send(session, _error("m5"))
            assert outbox.waiting == 5

        with names.channel() as channel:
            channel.queue_bind(names.error_queue, names.exchange, "error")
        with _outbox_of(node, names) as (outbox, session):
            assert outbox.retry(session) == 5
            assert outbox.send(session, _error("m5")) is True
        published = [properties.correlation_id for _, properties in names.error_messages()]
        assert published == [f"corr-m{number}" for number in range(6)]
