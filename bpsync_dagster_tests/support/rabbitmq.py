"""RabbitMQ topology for tests: a mapping queue (stream or classic) and an error queue, per test."""

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika

PARAMETERS = pika.ConnectionParameters("127.0.0.1", 5672, credentials=pika.PlainCredentials("guest", "guest"))


@dataclass(frozen=True)
class Topology:
    """Exchange `exchange` routes `mappings` to `mapping_queue` and `error` to `error_queue`."""

    exchange: str
    mapping_queue: str
    error_queue: str

    def publish(self, body: bytes | dict, correlation_id: str | None = None, message_id: str | None = None) -> None:
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        with _channel() as channel:
            channel.confirm_delivery()
            channel.basic_publish(
                self.exchange,
                "mappings",
                payload,
                pika.BasicProperties(
                    delivery_mode=2,
                    content_type="application/json",
                    correlation_id=correlation_id or str(uuid.uuid4()),
                    message_id=message_id,
                ),
            )

    def error_messages(self) -> list[tuple[dict, pika.BasicProperties]]:
        """Everything on the error queue, removed from it."""
        messages = []
        with _channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.error_queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append((json.loads(body), properties))

    def ready_count(self) -> int:
        """Messages in a classic mapping queue once consumers are gone (unacked ones return to it)."""
        time.sleep(0.2)
        with _channel() as channel:
            return channel.queue_declare(self.mapping_queue, passive=True).method.message_count


@contextmanager
def _channel() -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(PARAMETERS)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


@contextmanager
def topology(prefix: str, kind: str) -> Iterator[Topology]:
    """Declare the SDA-like topology for one test (`kind`: stream or classic) and delete it after."""
    names = Topology(f"{prefix}-sda", f"{prefix}-mapping_{kind}", f"{prefix}-errors")
    arguments = {"x-queue-type": "stream"} if kind == "stream" else {}
    with _channel() as channel:
        channel.exchange_declare(names.exchange, "topic", durable=True)
        channel.queue_declare(names.mapping_queue, durable=True, arguments=arguments)
        channel.queue_bind(names.mapping_queue, names.exchange, "mappings")
        channel.queue_declare(names.error_queue, durable=True)
        channel.queue_bind(names.error_queue, names.exchange, "error")
    try:
        yield names
    finally:
        with _channel() as channel:
            channel.queue_delete(names.mapping_queue)
            channel.queue_delete(names.error_queue)
            channel.exchange_delete(names.exchange)
