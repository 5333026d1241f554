"""One tick of the mapping sensor: read a bounded batch of dataset-mapping messages, answer the bad
ones with info-errors, and turn the local ones into requests of `sync_dataset` runs of their partitions.

Nothing is lost. On a stream the cursor is the last handled offset and each tick resumes after it.
On a classic queue a message is acked only once Dagster holds a run for its run key, so a crash at
any moment leaves it in the queue, and the run key keeps it from launching a second run. An
info-error the broker does not take waits in the outbox (`info_errors`) while the sensor reads on.

A stream read that returns nothing is never evidence of anything (the broker may be slow). That the
stream was deleted and declared again is concluded only from messages read: the one at the cursor's
offset is not the one handled there, or the stream's first message is not the first one seen before.
"""

import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import dagster as dg

from bpsync_dagster.broker.client import (
    BrokerSession,
    Delivery,
    QueueKind,
    StreamPosition,
    detect_queue_kind,
)
from bpsync_dagster.broker.messages import (
    ForeignDataset,
    InvalidMessage,
    SyncDataset,
    body_digest,
    correlation_id_problem,
    decide,
    info_error_body,
)
from bpsync_dagster.configuration import Settings
from bpsync_dagster.configuration.schemas import (
    load_schema,
    mapping_schema_file,
    schema_validator,
)
from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.jobs.sync_dataset import sync_run_config
from bpsync_dagster.sensors.info_errors import InfoError, InfoErrorOutbox

CORRELATION_TAG = "correlation_id"
# A classic queue hands back, first, the messages earlier ticks left unacked (waiting for their
# runs); they do not count toward the batch, but at most this many batches are fetched per tick.
CLASSIC_FETCH_BATCHES = 4
# Seconds from a tick's start after which no stream read starts or goes on, and after which no further
# message is handled (the first one read always is). Dagster times a sensor evaluation out after 60 s,
# and a request under way at these limits (on a slow broker, seconds each) still runs to its end.
READ_BUDGET_SECONDS = 20.0
HANDLING_BUDGET_SECONDS = 30.0


@dataclass(frozen=True)
class StreamMark:
    """A message seen in the stream: its offset and fingerprint."""

    offset: int
    fingerprint: str

    @staticmethod
    def of(delivery: Delivery) -> "StreamMark":
        assert delivery.offset is not None, "a stream delivery carries its offset"
        return StreamMark(delivery.offset, delivery.fingerprint)


@dataclass(frozen=True)
class SensorCursor:
    """What the sensor remembers between ticks.

    On a stream: `offset` is the last handled offset and `fingerprint` that message's, `origin` the
    stream's first message as last seen, `start` the ISO time to read from until a first message is
    read (offset -1), and `generation` counts the times the stream was found deleted and declared again.
    """

    queue: str
    kind: QueueKind
    offset: int = -1
    generation: int = 0
    fingerprint: str | None = None
    origin: StreamMark | None = None
    start: str | None = None

    def serialize(self) -> str:
        data: dict[str, object] = {
            "queue": self.queue,
            "kind": self.kind.value,
            "offset": self.offset,
            "generation": self.generation,
        }
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        if self.origin is not None:
            data["origin"] = [self.origin.offset, self.origin.fingerprint]
        if self.start is not None:
            data["start"] = self.start
        return json.dumps(data)

    @staticmethod
    def parse(text: str | None) -> "SensorCursor | None":
        if not text:
            return None
        data = json.loads(text)
        origin = data.get("origin")
        return SensorCursor(
            str(data["queue"]),
            QueueKind(data["kind"]),
            int(data["offset"]),
            int(data["generation"]),
            fingerprint=str(data["fingerprint"]) if data.get("fingerprint") is not None else None,
            origin=StreamMark(int(origin[0]), str(origin[1])) if origin is not None else None,
            start=str(data["start"]) if data.get("start") is not None else None,
        )


@dataclass
class TickReport:
    runs_requested: int = 0
    errors_published: int = 0
    errors_waiting: int = 0
    foreign_skipped: int = 0
    acked_with_run: int = 0

    def __str__(self) -> str:
        waiting = f" ({self.errors_waiting} wait for the broker)" if self.errors_waiting else ""
        return (
            f"{self.runs_requested} runs requested, {self.errors_published} info-errors published{waiting}, "
            f"{self.foreign_skipped} foreign datasets skipped, {self.acked_with_run} messages acked with their run"
        )


@dataclass(frozen=True)
class TickResult:
    run_requests: list[dg.RunRequest]
    cursor: SensorCursor
    report: TickReport


# Whether a run made before this stream generation (dataset, correlation id, generation) synced that
# message already or is still at it.
EarlierRunCheck = Callable[[SyncDataset, str | None, int], bool]


class MappingPoller:
    """Reads `broker.queue` for one tick, in a session of `open_session`; `run_exists(run_key)` and
    `synced_earlier` ask Dagster's storage; info-errors go through `outbox`."""

    def __init__(
        self,
        settings: Settings,
        open_session: Callable[[], BrokerSession],
        run_exists: Callable[[str], bool],
        log: logging.Logger,
        outbox: InfoErrorOutbox,
        synced_earlier: EarlierRunCheck,
    ) -> None:
        self._settings = settings
        self._open_session = open_session
        self._queue = settings.broker.queue
        self._run_exists = run_exists
        self._synced_earlier = synced_earlier
        self._log = log
        self._outbox = outbox
        self._validator = schema_validator(load_schema(mapping_schema_file(settings.schema)))
        self._report = TickReport()
        # A poller serves one tick: its budgets count from here.
        self._started = time.monotonic()

    def poll(self, cursor_text: str | None) -> TickResult:
        cursor = self._cursor_for_this_queue(cursor_text)
        kind = cursor.kind if cursor is not None else self._queue_kind()
        with self._open_session() as session:
            self._report.errors_published += self._outbox.retry(session)
            if kind is QueueKind.STREAM:
                requests, cursor = self._poll_stream(session, cursor, self._started + READ_BUDGET_SECONDS)
            else:
                requests, cursor = self._poll_classic(session), SensorCursor(self._queue, kind)
        self._report.errors_waiting = self._outbox.waiting
        return TickResult(requests, cursor, self._report)

    def _cursor_for_this_queue(self, cursor_text: str | None) -> SensorCursor | None:
        try:
            cursor = SensorCursor.parse(cursor_text)
        except (ValueError, KeyError, TypeError, IndexError):
            self._log.error(f"mapping sensor: unreadable cursor {cursor_text!r}; starting as on a first start")
            return None
        if cursor is not None and cursor.queue != self._queue:
            self._log.warning(
                f"mapping sensor: broker.queue changed from {cursor.queue} to {self._queue}; starting on it as on a first start"
            )
            return None
        return cursor

    def _queue_kind(self) -> QueueKind:
        configured = self._settings.sensor.queue_type
        kind = QueueKind(configured) if configured != "auto" else detect_queue_kind(self._settings.broker)
        how = "sync.sensor.queueType" if configured != "auto" else "detected"
        self._log.info(f"broker.queue {self._queue} is a {kind.value} queue ({how})")
        return kind

    def _local_dataset(self, session: BrokerSession, delivery: Delivery, run_key: str) -> SyncDataset | None:
        """The dataset to sync, or None once a foreign or invalid message is dealt with: an invalid
        one's info-error is published, or waits in the outbox when the broker does not take it."""
        decision = decide(delivery.body, self._validator, self._settings.center_prefix)
        if (problem := correlation_id_problem(delivery.correlation_id)) is not None:
            reasons = [decision.reason] if isinstance(decision, InvalidMessage) else []
            decision = InvalidMessage("; ".join([problem, *reasons]))
        if isinstance(decision, InvalidMessage):
            error = InfoError(run_key, info_error_body(decision.reason, delivery.body), delivery.correlation_id)
            if self._outbox.send(session, error):
                self._report.errors_published += 1
                self._log.warning(f"message {run_key}: {decision.reason}; info-error published")
            else:
                self._log.warning(f"message {run_key}: {decision.reason}; its info-error waits for the broker")
            return None
        if isinstance(decision, ForeignDataset):
            self._report.foreign_skipped += 1
            self._log.info(f"message {run_key}: dataset {decision.dataset_id} was minted elsewhere; nothing to do")
            return None
        return decision

    def _run_request(self, dataset: SyncDataset, run_key: str, delivery: Delivery) -> dg.RunRequest:
        """The run of a dataset's partition, for a dataset whose IDs and correlation id `_local_dataset`
        found fit for tags and partition keys."""
        tags = {DATASET_TAG: dataset.dataset_id}
        if isinstance(delivery.correlation_id, str) and delivery.correlation_id:
            tags[CORRELATION_TAG] = delivery.correlation_id
        self._report.runs_requested += 1
        return dg.RunRequest(
            run_key=run_key,
            partition_key=dataset.dataset_id,
            run_config=sync_run_config(list(dataset.accession_ids)),
            tags=tags,
        )

    def _poll_stream(
        self, session: BrokerSession, cursor: SensorCursor | None, deadline: float
    ) -> tuple[list[dg.RunRequest], SensorCursor]:
        if cursor is None:
            cursor = self._pin_first_position(session, deadline)
        elif cursor.origin is None and (cursor.offset >= 0 or cursor.start is not None):
            cursor = self._check_origin(session, cursor, deadline)
        anchored = cursor.offset >= 0
        position: StreamPosition = cursor.offset if anchored else _start_position(cursor)
        limit = self._settings.sensor.batch_size + (1 if anchored else 0)
        deliveries = session.read_stream(position, limit, deadline, expect_delivery=anchored)
        if position == "first" and deliveries:
            cursor = replace(cursor, origin=StreamMark.of(deliveries[0]))
        anchor = next((delivery for delivery in deliveries if anchored and delivery.offset == cursor.offset), None)
        if anchor is not None and cursor.fingerprint not in (None, anchor.fingerprint):
            return [], self._recreated(cursor, f"the message at offset {cursor.offset} is not the one handled there")
        if anchor is not None:
            cursor = replace(cursor, fingerprint=anchor.fingerprint)
        fresh = [delivery for delivery in deliveries if delivery.offset is not None and delivery.offset > cursor.offset]
        if not fresh and anchored and anchor is None:
            # Nothing at or after the cursor: a slow broker, or a stream re-created shorter than the cursor.
            return [], self._check_origin(session, cursor, deadline)
        if not fresh:
            return [], cursor
        if anchored and anchor is None and fresh[0].offset > cursor.offset + 1:
            self._log.error(
                f"stream {self._queue}: offsets {cursor.offset + 1} to {fresh[0].offset - 1} are gone before they were "
                "read (removed by the stream's retention); those datasets need `bpsync sync`"
            )
        return self._handle_stream_messages(session, cursor, fresh)

    def _handle_stream_messages(
        self, session: BrokerSession, cursor: SensorCursor, fresh: list[Delivery]
    ) -> tuple[list[dg.RunRequest], SensorCursor]:
        requests = []
        for delivery in fresh:
            if delivery is not fresh[0] and time.monotonic() > self._started + HANDLING_BUDGET_SECONDS:
                self._log.warning(f"stream {self._queue}: the tick's time is up; offset {delivery.offset} on is next")
                break
            run_key = f"{self._queue}:{cursor.generation}:{delivery.offset}"
            dataset = self._local_dataset(session, delivery, run_key)
            if (
                dataset is not None
                and cursor.generation > 0
                and self._synced_earlier(dataset, delivery.correlation_id, cursor.generation)
            ):
                self._log.info(
                    f"message {run_key}: dataset {dataset.dataset_id} was synced (or is being synced) by a run of this "
                    "message from before the stream was re-created; no second run"
                )
            elif dataset is not None:
                requests.append(self._run_request(dataset, run_key, delivery))
            cursor = replace(cursor, offset=delivery.offset, fingerprint=delivery.fingerprint, start=None)
        return requests, cursor

    def _pin_first_position(self, session: BrokerSession, deadline: float) -> SensorCursor:
        """Turn `sync.sensor.streamStart` into a position on the very first tick, without guessing.

        `next` is the stream's tail when a read finds it; when none does (an empty stream, or a slow
        broker), it is the tick's start time: reading from there never replays the stream.
        """
        start = self._settings.sensor.stream_start
        cursor = SensorCursor(self._queue, QueueKind.STREAM)
        if start.isdigit():
            cursor = replace(cursor, offset=int(start) - 1)
        elif start == "next":
            started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
            tail = session.tail_offset(deadline)
            cursor = replace(cursor, offset=tail) if tail is not None else replace(cursor, start=started.isoformat())
        elif start != "first":
            cursor = replace(cursor, start=start)
        where = f"offset {cursor.offset + 1}" if cursor.start is None else f"the first message from {cursor.start}"
        self._log.info(f"stream {self._queue}: first start (sync.sensor.streamStart={start}), reading from {where}")
        return cursor

    def _check_origin(self, session: BrokerSession, cursor: SensorCursor, deadline: float) -> SensorCursor:
        """Compare the stream's first message with the one seen before; remember it when there is none.

        A stream's first offset only grows (retention), and the message there never changes; a lower
        first offset, or another message at the same one, is a stream deleted and declared again.
        """
        deliveries = session.read_stream("first", 1, deadline)
        if not deliveries:
            return cursor
        seen = StreamMark.of(deliveries[0])
        known = cursor.origin
        if known is not None and seen.offset < known.offset:
            return self._recreated(cursor, f"its first offset is {seen.offset}, below the {known.offset} seen before")
        if known is not None and seen.offset == known.offset and seen.fingerprint != known.fingerprint:
            return self._recreated(cursor, f"its first message (offset {seen.offset}) is not the one seen before")
        return replace(cursor, origin=seen) if known is None or seen.offset > known.offset else cursor

    def _recreated(self, cursor: SensorCursor, evidence: str) -> SensorCursor:
        self._log.error(
            f"stream {self._queue} was deleted and declared again ({evidence}); reading the new stream from its "
            f"first offset as generation {cursor.generation + 1}"
        )
        return SensorCursor(self._queue, QueueKind.STREAM, generation=cursor.generation + 1)

    def _poll_classic(self, session: BrokerSession) -> list[dg.RunRequest]:
        """Unacked until a later tick finds the run; a duplicate in the same tick waits for that tick too.

        Only new work counts toward the batch: a message whose run exists is acked, and one an
        earlier tick already requested a run for (redelivered, its run not created yet) is requested
        again (the run key keeps it to one run); neither counts.
        """
        batch_size = self._settings.sensor.batch_size
        requests: list[dg.RunRequest] = []
        requested: set[str] = set()
        new_work = fetched = 0
        while new_work < batch_size and fetched < batch_size * CLASSIC_FETCH_BATCHES:
            delivery = session.get_classic()
            if delivery is None:
                break
            fetched += 1
            identity = delivery.message_id or body_digest(f"{delivery.correlation_id}\n".encode() + delivery.body)
            run_key = f"{self._queue}:{identity}"
            if run_key in requested:
                continue
            if self._run_exists(run_key):
                self._report.acked_with_run += 1
                session.ack(delivery)
                continue
            if not delivery.redelivered:
                new_work += 1
            dataset = self._local_dataset(session, delivery, run_key)
            if dataset is None:
                session.ack(delivery)
                continue
            requests.append(self._run_request(dataset, run_key, delivery))
            requested.add(run_key)
        return requests


def _start_position(cursor: SensorCursor) -> StreamPosition:
    """Where a stream with nothing handled yet is read from: the pinned time, or its first offset."""
    return datetime.datetime.fromisoformat(cursor.start) if cursor.start is not None else "first"
