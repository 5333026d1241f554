"""A short-lived RabbitMQ session: detect the queue kind, read a bounded batch, publish confirmed errors.

The service declares nothing: the queue must exist (SDA's topology declares it).
"""

import datetime
import logging
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from bpsync_dagster.broker.connection import connection_parameters
from bpsync_dagster.configuration import BrokerSettings

logger = logging.getLogger(__name__)

ERROR_ROUTING_KEY = "error"
StreamPosition = int | str | datetime.datetime


class QueueKind(StrEnum):
    STREAM = "stream"
    CLASSIC = "classic"


class BrokerError(Exception):
    """The broker is unreachable, refused us, or the queue is missing."""


class InfoErrorNotPublished(BrokerError):
    """The broker did not confirm an info-error: it returned it (unroutable), refused it, or was lost."""


@dataclass(frozen=True)
class Delivery:
    body: bytes
    delivery_tag: int
    offset: int | None
    message_id: str | None
    # pika hands over a correlation id that is not UTF-8 as bytes.
    correlation_id: str | bytes | None
    redelivered: bool = False


def _delivery(
    method: pika.spec.Basic.Deliver | pika.spec.Basic.GetOk, properties: pika.BasicProperties, body: bytes
) -> Delivery:
    headers = properties.headers or {}
    offset = headers.get("x-stream-offset")
    return Delivery(
        body=body,
        delivery_tag=method.delivery_tag,
        offset=int(offset) if offset is not None else None,
        message_id=properties.message_id,
        correlation_id=properties.correlation_id,
        redelivered=bool(method.redelivered),
    )


class BrokerSession:
    """One connection for one sensor tick; closing it never raises."""

    def __init__(self, settings: BrokerSettings) -> None:
        self._settings = settings
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def __enter__(self) -> "BrokerSession":
        self._connection = _connect(self._settings)
        self._channel = self._connection.channel()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # Closing a stream consumer rejects the deliveries pika still buffers, which a stream answers by
        # closing the connection; the cursor, not the ack, records progress, so that error is harmless.
        if self._connection is not None and self._connection.is_open:
            try:
                self._connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    @property
    def channel(self) -> BlockingChannel:
        assert self._channel is not None, "use BrokerSession as a context manager"
        return self._channel

    def read_stream(self, start: StreamPosition, limit: int, idle_seconds: float) -> list[Delivery]:
        """Up to `limit` deliveries from `start`, stopping after `idle_seconds` without one; each acked.

        Each call consumes on a channel of its own, so earlier consumers never interleave.
        """
        assert self._connection is not None, "use BrokerSession as a context manager"
        channel = self._connection.channel()
        channel.basic_qos(prefetch_count=self._settings.prefetch_count)
        deliveries: list[Delivery] = []
        consumer = channel.consume(
            self._settings.queue, auto_ack=False, arguments={"x-stream-offset": start}, inactivity_timeout=idle_seconds
        )
        for method, properties, body in consumer:
            if method is None:
                break
            deliveries.append(_delivery(method, properties, body))
            channel.basic_ack(method.delivery_tag)
            if len(deliveries) >= limit:
                break
        return deliveries

    def last_offset(self, idle_seconds: float) -> int | None:
        """The stream's last offset, or None when it is empty."""
        deliveries = self.read_stream("last", limit=1_000_000, idle_seconds=idle_seconds)
        return max((delivery.offset for delivery in deliveries if delivery.offset is not None), default=None)

    def get_classic(self) -> Delivery | None:
        """The next message, unacked (it returns to the queue unless acked in this session), or None."""
        method, properties, body = self.channel.basic_get(self._settings.queue, auto_ack=False)
        return None if method is None else _delivery(method, properties, body)

    def ack(self, delivery: Delivery) -> None:
        self.channel.basic_ack(delivery.delivery_tag)

    def publish_error(self, body: bytes, correlation_id: str | bytes | None) -> None:
        """Publish to `broker.exchange` with routing key `error`, `mandatory`; returns once the broker
        confirms it, else raises InfoErrorNotPublished (a returned, unroutable message included).

        Each publish has a channel of its own: a refusal closes that channel only.
        """
        assert self._connection is not None, "use BrokerSession as a context manager"
        exchange = f"broker.exchange {self._settings.exchange!r}" if self._settings.exchange else "the default exchange"
        channel: BlockingChannel | None = None
        try:
            channel = self._connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                exchange=self._settings.exchange,
                routing_key=ERROR_ROUTING_KEY,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    correlation_id=correlation_id,  # type: ignore[arg-type]  # bytes are sent as they are
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise InfoErrorNotPublished(
                f"no queue is bound to routing key {ERROR_ROUTING_KEY!r} on {exchange}: the broker returned the info-error"
            ) from None
        except pika.exceptions.NackError:
            raise InfoErrorNotPublished(f"the broker refused (nack) the info-error for {exchange}") from None
        except pika.exceptions.ChannelClosedByBroker as error:
            raise InfoErrorNotPublished(f"{exchange}: {error.reply_text}") from None
        except (pika.exceptions.AMQPError, OSError) as error:
            detail = f"{type(error).__name__} {error}".strip()
            raise InfoErrorNotPublished(f"the connection to the broker failed while publishing: {detail}") from None
        finally:
            if channel is not None and channel.is_open:
                try:
                    channel.close()
                except (pika.exceptions.AMQPError, OSError):
                    pass


def _connect(settings: BrokerSettings) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(connection_parameters(settings))
    except pika.exceptions.ProbableAuthenticationError:
        raise BrokerError(f"the broker refused broker.user {settings.user!r}") from None
    except (pika.exceptions.AMQPError, OSError) as error:
        detail = f"{type(error).__name__} {error}".strip()
        raise BrokerError(f"cannot connect to the broker {settings.host}:{settings.port}: {detail}") from None


def detect_queue_kind(settings: BrokerSettings) -> QueueKind:
    """A stream refuses `basic.get` (by closing the connection); any other queue answers it.

    A message `basic.get` may return is not acked, so closing the connection returns it to the queue.
    """
    connection = _connect(settings)
    try:
        channel = connection.channel()
        channel.queue_declare(settings.queue, passive=True)
        channel.basic_get(settings.queue, auto_ack=False)
        return QueueKind.CLASSIC
    except pika.exceptions.ConnectionClosedByBroker as error:
        if error.reply_code == 540 and "stream" in error.reply_text:
            return QueueKind.STREAM
        raise BrokerError(f"broker.queue {settings.queue!r}: {error.reply_text}") from None
    except pika.exceptions.ChannelClosedByBroker as error:
        raise BrokerError(f"broker.queue {settings.queue!r}: {error.reply_text}") from None
    finally:
        if connection.is_open:
            connection.close()
