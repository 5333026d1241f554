"""One tick of the mapping sensor: read a bounded batch of dataset-mapping messages, answer the bad
ones with info-errors, and turn the local ones into `sync_dataset` run requests.

Nothing is lost. On a stream the cursor is the last handled offset and each tick resumes after it.
On a classic queue a message is acked only once Dagster holds a run for its run key, so a crash at
any moment leaves it in the queue, and the run key keeps it from launching a second run. An
info-error the broker does not take waits in the outbox (`info_errors`) while the sensor reads on.
"""

import datetime
import json
import logging
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
from bpsync_dagster.sensors.info_errors import InfoError, InfoErrorOutbox

CORRELATION_TAG = "correlation_id"
IDLE_SECONDS = 0.3
# A classic queue hands back, first, the messages earlier ticks left unacked (waiting for their
# runs); they do not count toward the batch, but at most this many batches are fetched per tick.
CLASSIC_FETCH_BATCHES = 4


@dataclass(frozen=True)
class SensorCursor:
    """What the sensor remembers between ticks; `offset` is the last handled stream offset."""

    queue: str
    kind: QueueKind
    offset: int = -1
    generation: int = 0

    def serialize(self) -> str:
        return json.dumps(
            {"queue": self.queue, "kind": self.kind.value, "offset": self.offset, "generation": self.generation}
        )

    @staticmethod
    def parse(text: str | None) -> "SensorCursor | None":
        if not text:
            return None
        data = json.loads(text)
        return SensorCursor(str(data["queue"]), QueueKind(data["kind"]), int(data["offset"]), int(data["generation"]))


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


class MappingPoller:
    """Reads `broker.queue` for one tick, in a session of `open_session`; `run_exists(run_key)` asks
    Dagster's storage; info-errors go through `outbox`."""

    def __init__(
        self,
        settings: Settings,
        open_session: Callable[[], BrokerSession],
        run_exists: Callable[[str], bool],
        log: logging.Logger,
        outbox: InfoErrorOutbox,
    ) -> None:
        self._settings = settings
        self._open_session = open_session
        self._queue = settings.broker.queue
        self._run_exists = run_exists
        self._log = log
        self._outbox = outbox
        self._validator = schema_validator(load_schema(mapping_schema_file(settings.schema)))
        self._report = TickReport()

    def poll(self, cursor_text: str | None) -> TickResult:
        cursor = self._cursor_for_this_queue(cursor_text)
        kind = cursor.kind if cursor is not None else self._queue_kind()
        with self._open_session() as session:
            self._report.errors_published += self._outbox.retry(session)
            if kind is QueueKind.STREAM:
                requests, cursor = self._poll_stream(session, cursor)
            else:
                requests, cursor = self._poll_classic(session), SensorCursor(self._queue, kind)
        self._report.errors_waiting = self._outbox.waiting
        return TickResult(requests, cursor, self._report)

    def _cursor_for_this_queue(self, cursor_text: str | None) -> SensorCursor | None:
        try:
            cursor = SensorCursor.parse(cursor_text)
        except (ValueError, KeyError, TypeError):
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
        """The run of a dataset whose IDs and correlation id `_local_dataset` found fit for tags."""
        tags = {DATASET_TAG: dataset.dataset_id}
        if isinstance(delivery.correlation_id, str) and delivery.correlation_id:
            tags[CORRELATION_TAG] = delivery.correlation_id
        self._report.runs_requested += 1
        return dg.RunRequest(
            run_key=run_key,
            run_config={
                "ops": {
                    "fetch_file_records": {
                        "config": {"dataset_id": dataset.dataset_id, "accession_ids": list(dataset.accession_ids)}
                    }
                }
            },
            tags=tags,
        )

    def _poll_stream(
        self, session: BrokerSession, cursor: SensorCursor | None
    ) -> tuple[list[dg.RunRequest], SensorCursor]:
        if cursor is None:
            cursor = self._pin_first_position(session)
        deliveries = session.read_stream(cursor.offset + 1, self._settings.sensor.batch_size, IDLE_SECONDS)
        fresh = [delivery for delivery in deliveries if delivery.offset is not None and delivery.offset > cursor.offset]
        if not fresh:
            return [], self._check_stream_restarted(session, cursor)
        if cursor.offset >= 0 and fresh[0].offset > cursor.offset + 1:
            self._log.error(
                f"stream {self._queue}: offsets {cursor.offset + 1} to {fresh[0].offset - 1} are gone before they were "
                "read (removed by the stream's retention); those datasets need `bpsync sync`"
            )
        requests = []
        for delivery in fresh:
            run_key = f"{self._queue}:{cursor.generation}:{delivery.offset}"
            dataset = self._local_dataset(session, delivery, run_key)
            if dataset is not None:
                requests.append(self._run_request(dataset, run_key, delivery))
            cursor = replace(cursor, offset=delivery.offset)
        return requests, cursor

    def _pin_first_position(self, session: BrokerSession) -> SensorCursor:
        """Turn `sync.sensor.streamStart` into a concrete offset on the very first tick."""
        start = self._settings.sensor.stream_start
        if start == "first":
            offset = -1
        elif start.isdigit():
            offset = int(start) - 1
        elif start == "next":
            last = session.last_offset(IDLE_SECONDS)
            offset = -1 if last is None else last
        else:
            position: StreamPosition = datetime.datetime.fromisoformat(start)
            first = session.read_stream(position, 1, IDLE_SECONDS)
            if first and first[0].offset is not None:
                offset = first[0].offset - 1
            else:
                last = session.last_offset(IDLE_SECONDS)
                offset = -1 if last is None else last
        self._log.info(
            f"stream {self._queue}: first start (sync.sensor.streamStart={start}), reading from offset {offset + 1}"
        )
        return SensorCursor(self._queue, QueueKind.STREAM, offset)

    def _check_stream_restarted(self, session: BrokerSession, cursor: SensorCursor) -> SensorCursor:
        """A stream deleted and declared again restarts below the cursor; read the new one from its start."""
        if cursor.offset < 0:
            return cursor
        last = session.last_offset(IDLE_SECONDS)
        if last is not None and last >= cursor.offset:
            return cursor
        self._log.error(
            f"stream {self._queue} was re-created: its last offset is {last}, below the handled offset {cursor.offset}; "
            "reading the new stream from its first offset"
        )
        return SensorCursor(self._queue, QueueKind.STREAM, -1, cursor.generation + 1)

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
