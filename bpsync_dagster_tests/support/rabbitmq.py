"""RabbitMQ topology for tests: an exchange routing `mappings` to a mapping queue (stream or classic)
and `error` to an error queue, on the shared broker or a private one."""

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pika
from pika.adapters.blocking_connection import BlockingChannel

SHARED_BROKER = pika.ConnectionParameters("127.0.0.1", 5672, credentials=pika.PlainCredentials("guest", "guest"))

# The service logs in as a user with the SDA's permissions: configure nothing, write only the
# exchange `sda` (each test's is `<prefix>-sda`), read everything.
SERVICE_USER = "bpsync_test_sync"
SERVICE_PASSWORD = "broker-secret-5e1"
SERVICE_PERMISSIONS = ("^$", "^(.+-)?sda$", ".*")


def ensure_service_user() -> None:
    """Create (or reset) the service's user on the shared broker's vhost `/` with the SDA's permissions."""

    def rabbitmqctl(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rabbitmqctl", "-q", *arguments], capture_output=True, text=True, timeout=60)

    if rabbitmqctl("add_user", SERVICE_USER, SERVICE_PASSWORD).returncode != 0:
        rabbitmqctl("change_password", SERVICE_USER, SERVICE_PASSWORD).check_returncode()
    rabbitmqctl("set_permissions", "-p", "/", SERVICE_USER, *SERVICE_PERMISSIONS).check_returncode()


@dataclass(frozen=True)
class Topology:
    exchange: str
    mapping_queue: str
    error_queue: str
    parameters: pika.ConnectionParameters = field(default_factory=lambda: SHARED_BROKER, compare=False)

    @contextmanager
    def channel(self) -> Iterator[BlockingChannel]:
        connection = pika.BlockingConnection(self.parameters)
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()

    def declare(self, kind: str) -> None:
        arguments = {"x-queue-type": "stream"} if kind == "stream" else {}
        with self.channel() as channel:
            channel.exchange_declare(self.exchange, "topic", durable=True)
            channel.queue_declare(self.mapping_queue, durable=True, arguments=arguments)
            channel.queue_bind(self.mapping_queue, self.exchange, "mappings")
            channel.queue_declare(self.error_queue, durable=True)
            channel.queue_bind(self.error_queue, self.exchange, "error")

    def delete(self) -> None:
        with self.channel() as channel:
            channel.queue_delete(self.mapping_queue)
            channel.queue_delete(self.error_queue)
            channel.exchange_delete(self.exchange)

    def publish(
        self, body: bytes | dict, correlation_id: str | bytes | None = None, message_id: str | None = None
    ) -> str | bytes:
        """Publish a persistent mapping message, routed and confirmed; its correlation id (bytes are sent as they are)."""
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        correlation_id = correlation_id or str(uuid.uuid4())
        with self.channel() as channel:
            channel.confirm_delivery()
            channel.basic_publish(
                self.exchange,
                "mappings",
                payload,
                pika.BasicProperties(
                    delivery_mode=2,
                    content_type="application/json",
                    correlation_id=correlation_id,
                    message_id=message_id,
                ),
                mandatory=True,
            )
        return correlation_id

    def error_messages(self) -> list[tuple[dict, pika.BasicProperties]]:
        """Everything on the error queue, removed from it."""
        messages = []
        with self.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.error_queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append((json.loads(body), properties))

    def ready_count(self) -> int:
        """Messages in a classic mapping queue once consumers are gone (unacked ones return to it)."""
        time.sleep(0.2)
        with self.channel() as channel:
            return channel.queue_declare(self.mapping_queue, passive=True).method.message_count

    def error_count(self) -> int:
        with self.channel() as channel:
            return channel.queue_declare(self.error_queue, passive=True).method.message_count


@contextmanager
def topology(prefix: str, kind: str, parameters: pika.ConnectionParameters = SHARED_BROKER) -> Iterator[Topology]:
    """Declare one test's topology (`kind`: stream or classic) and delete it afterwards."""
    names = Topology(f"{prefix}-sda", f"{prefix}-mapping_{kind}", f"{prefix}-errors", parameters)
    names.declare(kind)
    try:
        yield names
    finally:
        names.delete()
