"""The Prometheus collector of `bpsync metrics`: at every scrape it reads Dagster's instance and the
broker, so its values come from what they hold and survive a restart of the exporter.

Scrape cost stays bounded. Sync runs that ended are folded in incrementally (`SyncTally`), keyed by
the storage IDs of their end events in the event log: a scrape reads the ends since the last one, at
most `ENDS_PER_SCRAPE` of them (an exporter started on a long history catches up over a few scrapes),
with one query of their runs per page and one of each run's step outputs. Runs under way are counted,
the last success is one query, the last audit is read once per audit run. On the broker, the time the
oldest unhandled message was written is searched once per first unhandled offset and cached.
"""

import datetime
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from bpsync_dagster.broker.client import BrokerError, BrokerSession, QueueKind, StreamPosition, detect_queue_kind
from bpsync_dagster.configuration import Settings
from bpsync_dagster.dagster_internals import IMPLICIT_ASSET_JOB_NAME, WILL_RETRY_TAG, sensor_cursors
from bpsync_dagster.errors import SyncError
from bpsync_dagster.inventory import MATCHES_SDA_CHECK, SYNC_JOB_NAME, SYNCED_DATASET, syncs_a_dataset
from bpsync_dagster.jobs.audit_sync import audit_sync
from bpsync_dagster.jobs.sync_dataset import is_copy_step
from bpsync_dagster.metrics.values import (
    AuditFindings,
    EndedSync,
    Outcome,
    SensorLag,
    Snapshot,
    SyncTally,
    find_write_time,
    metric_families,
    unhandled_messages,
)
from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster.sensors.mapping_poller import SensorCursor

logger = logging.getLogger(__name__)

ENDS_PAGE = 100
ENDS_PER_SCRAPE = 500
UNFINISHED_ASSET_JOB_RUNS = 1000
# Seconds a scrape spends reading the broker at most, and reads of the write-time search per scrape.
BROKER_BUDGET_SECONDS = 8.0
AGE_PROBES = 48
END_EVENTS = {
    dg.DagsterEventType.RUN_SUCCESS: Outcome.SUCCESS,
    dg.DagsterEventType.RUN_FAILURE: Outcome.FAILURE,
    dg.DagsterEventType.RUN_CANCELED: Outcome.CANCELED,
}
QUEUED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED]
RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


class _OutOfTime(SyncError):
    """The scrape's broker budget was spent before a read answered."""


@dataclass(frozen=True)
class _WriteTime:
    """The write time found for the first unhandled offset of a stream generation."""

    queue: str
    generation: int
    offset: int
    second: int


class SyncMetricsCollector(Collector):
    """Reads `instance` and `settings.broker` at each `collect()`; scrapes are served one at a time."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings) -> None:
        self._instance = instance
        self._settings = settings
        self._tally = SyncTally()
        self._audit: tuple[str, AuditFindings] | None = None
        self._write_time: _WriteTime | None = None
        self._queue_kind: QueueKind | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self.snapshot()
        yield from metric_families(snapshot)

    def snapshot(self) -> Snapshot:
        instance_read = True
        try:
            self._fold_in_ended_syncs()
            runs = self._runs_by_state()
            last_success = self._instance.get_latest_materialization_event(SYNCED_DATASET)
            audit = self._last_audit()
            cursor = self._sensor_cursor()
        except Exception as error:
            logger.error(f"metrics: Dagster's instance not read: {type(error).__name__}: {error}")
            instance_read = False
            runs, last_success, audit, cursor = None, None, None, None
        # Without the sensor's cursor there is no lag to tell: the broker is not asked.
        lag, broker_read = None, None
        if instance_read:
            try:
                lag, broker_read = self._sensor_lag(cursor), True
            except Exception as error:
                detail = str(error) if isinstance(error, BrokerError) else f"{type(error).__name__}: {error}"
                logger.error(f"metrics: broker.queue {self._settings.broker.queue} not read: {detail}")
                broker_read = False
        return Snapshot(
            tally=self._tally if instance_read else None,
            runs_by_state=runs,
            last_success_at=last_success.timestamp if last_success is not None else None,
            audit=audit,
            lag=lag,
            instance_read=instance_read,
            broker_read=broker_read,
        )

    def _fold_in_ended_syncs(self) -> None:
        budget = ENDS_PER_SCRAPE
        for event_type, outcome in END_EVENTS.items():
            while budget > 0:
                records = self._instance.fetch_run_status_changes(
                    # Every job's ends: PostgreSQL's event log storage cannot filter them by job name.
                    dg.RunStatusChangeRecordsFilter(
                        event_type, after_storage_id=self._tally.positions.get(event_type.value)
                    ),
                    limit=min(ENDS_PAGE, budget),
                    ascending=True,
                ).records
                if not records:
                    break
                budget -= len(records)
                run_ids = [record.event_log_entry.run_id for record in records]
                runs = {
                    record.dagster_run.run_id: record
                    for record in self._instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
                }
                for record in records:
                    run = runs.get(record.event_log_entry.run_id)
                    if run is not None and syncs_a_dataset(run.dagster_run):
                        self._tally.add(self._ended_sync(run, outcome))
                    self._tally.passed(event_type.value, record.storage_id)

    def _ended_sync(self, record: dg.RunRecord, outcome: Outcome) -> EndedSync:
        run = record.dagster_run
        if outcome is Outcome.FAILURE and run.tags.get(WILL_RETRY_TAG) == "true":
            outcome = Outcome.RETRIED
        seconds = record.end_time - record.start_time if record.start_time and record.end_time else None
        copied = skipped = copied_bytes = 0
        outputs = self._instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT).records
        for output in outputs:
            event = output.event_log_entry.dagster_event
            if event is None or event.step_key is None or not is_copy_step(event.step_key):
                continue
            metadata = event.step_output_data.metadata
            copied += _int(metadata.get("files_copied"))
            skipped += _int(metadata.get("files_skipped"))
            copied_bytes += _int(metadata.get("bytes_copied"))
        return EndedSync(outcome, seconds, copied, skipped, copied_bytes)

    def _runs_by_state(self) -> dict[str, int]:
        counts = {}
        for state, statuses in (("queued", QUEUED), ("running", RUNNING)):
            sync_jobs = self._instance.get_runs_count(dg.RunsFilter(job_name=SYNC_JOB_NAME, statuses=statuses))
            asset_jobs = self._instance.get_runs(
                dg.RunsFilter(job_name=IMPLICIT_ASSET_JOB_NAME, statuses=statuses), limit=UNFINISHED_ASSET_JOB_RUNS
            )
            counts[state] = sync_jobs + sum(syncs_a_dataset(run) for run in asset_jobs)
        return counts

    def _last_audit(self) -> AuditFindings | None:
        records = self._instance.get_run_records(
            dg.RunsFilter(job_name=audit_sync.name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
        if not records:
            return None
        record = records[0]
        if self._audit is not None and self._audit[0] == record.dagster_run.run_id:
            return self._audit[1]
        run_id = record.dagster_run.run_id
        summary: dict[str, int] = {}
        for output in self._instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT).records:
            event = output.event_log_entry.dagster_event
            if event is not None and event.step_output_data is not None:
                summary.update({key: _int(value) for key, value in event.step_output_data.metadata.items()})
        missing = 0
        evaluations = self._instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for evaluation_record in evaluations.records:
            event = evaluation_record.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event is not None else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.check_name != MATCHES_SDA_CHECK:
                continue
            never_synced = evaluation.metadata.get("never_synced")
            if never_synced is None or never_synced.value is False:
                listed = evaluation.metadata.get("missing")
                missing += len(listed.value) if listed is not None and isinstance(listed.value, list) else 0
        findings = AuditFindings(
            finished_at=record.end_time or record.update_timestamp.timestamp(),
            in_sync=summary.get("in_sync", 0),
            drifted=summary.get("drifted", 0),
            never_synced=summary.get("never_synced", 0),
            files_missing=missing,
        )
        self._audit = (run_id, findings)
        return findings

    def _sensor_cursor(self) -> SensorCursor | None:
        """The mapping sensor's cursor on `broker.queue`, None before its first tick there."""
        for text in sensor_cursors(self._instance, MAPPING_SENSOR_NAME):
            try:
                cursor = SensorCursor.parse(text)
            except (ValueError, KeyError, TypeError, IndexError):
                continue
            if cursor is not None and cursor.queue == self._settings.broker.queue:
                return cursor
        return None

    def _kind(self, cursor: SensorCursor | None) -> QueueKind:
        if cursor is not None:
            return cursor.kind
        if self._queue_kind is None:
            configured = self._settings.sensor.queue_type
            self._queue_kind = (
                QueueKind(configured) if configured != "auto" else detect_queue_kind(self._settings.broker)
            )
        return self._queue_kind

    def _sensor_lag(self, cursor: SensorCursor | None) -> SensorLag:
        queue = self._settings.broker.queue
        kind = self._kind(cursor)
        deadline = time.monotonic() + BROKER_BUDGET_SECONDS
        with BrokerSession(self._settings.broker) as session:
            if kind is QueueKind.CLASSIC:
                count = session.channel.queue_declare(queue, passive=True).method.message_count
                return SensorLag(queue, kind.value, count, None)
            if cursor is None:
                # Before the sensor's first tick nothing is handled, and nothing counts as waiting either:
                # where the sensor starts is `sync.sensor.streamStart`'s to say.
                return SensorLag(queue, kind.value, None, None, tail_offset=session.tail_offset(deadline))
            first = session.read_stream(_first_unhandled(cursor), 1, deadline)
            handled = cursor.offset if cursor.offset >= 0 else None
            if not first or first[0].offset is None:
                return SensorLag(queue, kind.value, 0, 0.0, handled, cursor.offset if handled is not None else None)
            offset = first[0].offset
            tail = session.tail_offset(deadline)
            written = self._written_at(session, cursor, offset, deadline)
            age = max(0.0, time.time() - written) if written is not None else None
            return SensorLag(queue, kind.value, unhandled_messages(offset, tail), age, handled, tail)

    def _written_at(self, session: BrokerSession, cursor: SensorCursor, offset: int, deadline: float) -> int | None:
        known = self._write_time
        if known is not None and (known.queue, known.generation, known.offset) == (
            cursor.queue,
            cursor.generation,
            offset,
        ):
            return known.second

        def first_offset_from(second: int) -> int | None:
            deliveries = session.read_stream(datetime.datetime.fromtimestamp(second, datetime.UTC), 1, deadline)
            if not deliveries and time.monotonic() >= deadline:
                raise _OutOfTime
            return deliveries[0].offset if deliveries else None

        try:
            second = find_write_time(first_offset_from, offset, int(time.time()), AGE_PROBES)
        except _OutOfTime:
            logger.warning(f"metrics: the write time of offset {offset} was not found within {BROKER_BUDGET_SECONDS} s")
            return None
        if second is not None:
            self._write_time = _WriteTime(cursor.queue, cursor.generation, offset, second)
        return second


def _first_unhandled(cursor: SensorCursor) -> StreamPosition:
    if cursor.offset >= 0:
        return cursor.offset + 1
    return datetime.datetime.fromisoformat(cursor.start) if cursor.start is not None else "first"


def _int(value: object) -> int:
    """An integer metadata entry's value; 0 for anything else."""
    raw = getattr(value, "value", value)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
