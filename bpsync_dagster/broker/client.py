"""A short-lived RabbitMQ session: detect the queue kind, read a bounded batch, publish confirmed errors.

The service declares nothing: the queue must exist (SDA's topology declares it).

Stream reads adapt to the broker: a read waits for deliveries for `IDLE_FLOOR_SECONDS` plus twice the
slowest answer the session has had (connection handshake, channel open, qos, consume, and the first
delivery of a message known to exist), so a broker that answers seconds late is waited for, and a
prompt one costs no more than the floor. A read for a message known to exist (the one at the cursor)
waits at least `EXPECTED_WAIT_SECONDS` for it: a broker can be prompt to answer and slow to deliver.
"""

import datetime
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from bpsync_dagster.broker.connection import connection_parameters
from bpsync_dagster.configuration import BrokerSettings
from bpsync_dagster.errors import SyncError

logger = logging.getLogger(__name__)

ERROR_ROUTING_KEY = "error"
StreamPosition = int | str | datetime.datetime
T = TypeVar("T")

IDLE_FLOOR_SECONDS = 0.3
ANSWER_FACTOR = 2.0
# A read that must find a message (the one at the cursor) waits this many times longer for the first,
# and never less than EXPECTED_WAIT_SECONDS.
EXPECTED_FACTOR = 3.0
EXPECTED_WAIT_SECONDS = 10.0
# The tail read takes the chunk `last` starts at: deliveries that follow each other this closely.
TAIL_PREFETCH = 500
TAIL_SETTLE_SECONDS = 0.05
HANDSHAKE_ROUND_TRIPS = 3


class QueueKind(StrEnum):
    STREAM = "stream"
    CLASSIC = "classic"


class BrokerError(SyncError):
    """The broker is unreachable, refused us, or the queue is missing."""

    transient = True


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

    @property
    def fingerprint(self) -> str:
        """Tells this message from another one at the same offset (of a stream deleted and declared again)."""
        identity = repr((self.correlation_id, self.message_id)).encode() + b"\n" + self.body
        return hashlib.sha256(identity).hexdigest()[:32]


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
        self._slowest_answer = 0.0

    def __enter__(self) -> "BrokerSession":
        started = time.monotonic()
        self._connection = _connect(self._settings)
        self._note_answer((time.monotonic() - started) / HANDSHAKE_ROUND_TRIPS)
        self._channel = self._answered(self._connection.channel)
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

    @property
    def patience(self) -> float:
        """Seconds a stream read waits for its next delivery: the floor plus twice the slowest answer so far."""
        return IDLE_FLOOR_SECONDS + ANSWER_FACTOR * self._slowest_answer

    def _note_answer(self, seconds: float) -> None:
        self._slowest_answer = max(self._slowest_answer, seconds)

    def _answered(self, call: Callable[[], T]) -> T:
        """`call()`, a request the broker answers, timed."""
        started = time.monotonic()
        result = call()
        self._note_answer(time.monotonic() - started)
        return result

    def read_stream(
        self, start: StreamPosition, limit: int, deadline: float, expect_delivery: bool = False
    ) -> list[Delivery]:
        """Up to `limit` deliveries from `start`, each acked as it arrives.

        The read ends once no delivery came for `patience` seconds (before the first, when the caller
        knows there is one, `EXPECTED_FACTOR` times that and at least `EXPECTED_WAIT_SECONDS`), or at
        `deadline` (a `time.monotonic()` value). How long the expected first delivery took counts as an
        answer of the broker. Nothing read is no evidence of anything: the broker may just be slow. No
        read starts after the deadline. Each call consumes on a channel of its own, so earlier consumers
        never interleave.
        """
        if time.monotonic() >= deadline:
            return []
        consumer = self._consume(start, self._settings.prefetch_count)
        consumed_at = time.monotonic()
        deliveries: list[Delivery] = []
        wait = max(self.patience * EXPECTED_FACTOR, EXPECTED_WAIT_SECONDS) if expect_delivery else self.patience
        while len(deliveries) < limit:
            delivery = consumer.next(min(time.monotonic() + wait, deadline))
            if delivery is None:
                break
            if expect_delivery and not deliveries:
                self._note_answer(time.monotonic() - consumed_at)
            deliveries.append(delivery)
            wait = self.patience
        return deliveries

    def tail_offset(self, deadline: float) -> int | None:
        """The greatest offset of the stream's last chunk, where `last` starts; None when nothing came in
        time, which is an empty stream or a slow broker: the caller cannot tell which.

        One chunk at most: the read stops once deliveries pause for `TAIL_SETTLE_SECONDS`, and at the
        latest `patience` seconds after the first, however fast new messages arrive.
        """
        if time.monotonic() >= deadline:
            return None
        consumer = self._consume("last", TAIL_PREFETCH)
        first = consumer.next(min(time.monotonic() + self.patience, deadline))
        if first is None:
            return None
        settled_by = min(time.monotonic() + self.patience, deadline)
        offsets = [first.offset]
        while (delivery := consumer.next(min(time.monotonic() + TAIL_SETTLE_SECONDS, settled_by))) is not None:
            offsets.append(delivery.offset)
        return max((offset for offset in offsets if offset is not None), default=None)

    def _consume(self, start: StreamPosition, prefetch: int) -> "_StreamConsumer":
        assert self._connection is not None, "use BrokerSession as a context manager"
        channel = self._answered(self._connection.channel)
        self._answered(lambda: channel.basic_qos(prefetch_count=prefetch))
        consumer = _StreamConsumer(self._connection, channel)
        queue = self._settings.queue
        try:
            self._answered(lambda: channel.basic_consume(queue, consumer.arrived, arguments={"x-stream-offset": start}))
        except pika.exceptions.ChannelClosedByBroker as error:
            if "x-stream-offset" in error.reply_text:
                raise BrokerError(
                    f"broker.queue {queue!r} is not a stream (the broker refuses a stream offset: {error.reply_text}); "
                    "set sync.sensor.queueType to classic or auto"
                ) from error
            raise BrokerError(f"broker.queue {queue!r}: {error.reply_text}") from error
        return consumer

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
        except pika.exceptions.UnroutableError as error:
            raise InfoErrorNotPublished(
                f"no queue is bound to routing key {ERROR_ROUTING_KEY!r} on {exchange}: the broker returned the info-error"
            ) from error
        except pika.exceptions.NackError as error:
            raise InfoErrorNotPublished(f"the broker refused (nack) the info-error for {exchange}") from error
        except pika.exceptions.ChannelClosedByBroker as error:
            raise InfoErrorNotPublished(f"{exchange}: {error.reply_text}") from error
        except (pika.exceptions.AMQPError, OSError) as error:
            detail = f"{type(error).__name__} {error}".strip()
            raise InfoErrorNotPublished(f"the connection to the broker failed while publishing: {detail}") from error
        finally:
            if channel is not None and channel.is_open:
                try:
                    channel.close()
                except (pika.exceptions.AMQPError, OSError):
                    pass


class _StreamConsumer:
    """The deliveries of one stream consumer, handed out one at a time and acked (acks only return credit)."""

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self._connection = connection
        self._channel = channel
        self._arrived: deque[Delivery] = deque()

    def arrived(
        self, _: BlockingChannel, method: pika.spec.Basic.Deliver, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self._arrived.append(_delivery(method, properties, body))

    def next(self, until: float) -> Delivery | None:
        """The next delivery, waiting until `until` (a `time.monotonic()` value) at most."""
        while not self._arrived:
            left = until - time.monotonic()
            if left <= 0:
                return None
            self._connection.process_data_events(time_limit=left)
        delivery = self._arrived.popleft()
        self._channel.basic_ack(delivery.delivery_tag)
        return delivery


def _connect(settings: BrokerSettings) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(connection_parameters(settings))
    # from None: pika's errors from opening a connection may carry its parameters, broker.password among them.
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
        raise BrokerError(f"broker.queue {settings.queue!r}: {error.reply_text}") from error
    except pika.exceptions.ChannelClosedByBroker as error:
        raise BrokerError(f"broker.queue {settings.queue!r}: {error.reply_text}") from error
    finally:
        if connection.is_open:
            connection.close()
