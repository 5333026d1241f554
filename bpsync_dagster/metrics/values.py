"""What `bpsync metrics` exports, as plain values: the syncs that ended (folded in incrementally), the
sensor's lag on its queue, the runs under way, the last audit; and the Prometheus metric families made
of them. No Dagster and no broker here: the glue that reads them is `metrics/collector.py`.
"""

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

# Seconds: from a one-file dataset to one that copies terabytes.
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
# An age read from stream offsets is refined until it is known to within this share of itself (or 1 s).
AGE_PRECISION = 0.05


class Outcome(StrEnum):
    """How a sync run ended. `retried`: it failed and Dagster's run retries run it again."""

    SUCCESS = "success"
    FAILURE = "failure"
    RETRIED = "retried"
    CANCELED = "canceled"


@dataclass(frozen=True)
class EndedSync:
    """A sync run that ended: how, in how many seconds (None if it never started), and what its copy
    steps reported (`files_copied`, `files_skipped`, `bytes_copied`, summed over its batches)."""

    outcome: Outcome
    seconds: float | None
    files_copied: int = 0
    files_skipped: int = 0
    bytes_copied: int = 0


@dataclass
class SyncTally:
    """Every sync run that ended, folded in once each: the ends are read in the order of their storage
    IDs in Dagster's event log, and `positions` keeps, per kind of end, the last storage ID folded in,
    so that a scrape reads only what ended since the one before."""

    positions: dict[str, int] = field(default_factory=dict)
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    files_copied: int = 0
    files_skipped: int = 0
    bytes_copied: int = 0
    # Per outcome: the count of durations up to each bucket's bound (not cumulative yet), and their sum.
    duration_counts: dict[Outcome, list[int]] = field(default_factory=dict)
    duration_sums: Counter[Outcome] = field(default_factory=Counter)

    def add(self, sync: EndedSync) -> None:
        self.outcomes[sync.outcome] += 1
        self.files_copied += sync.files_copied
        self.files_skipped += sync.files_skipped
        self.bytes_copied += sync.bytes_copied
        if sync.seconds is None:
            return
        counts = self.duration_counts.setdefault(sync.outcome, [0] * (len(DURATION_BUCKETS) + 1))
        counts[_bucket_index(sync.seconds)] += 1
        self.duration_sums[sync.outcome] += sync.seconds

    def passed(self, kind: str, storage_id: int) -> None:
        self.positions[kind] = max(storage_id, self.positions.get(kind, 0))


def _bucket_index(seconds: float) -> int:
    return next((index for index, bound in enumerate(DURATION_BUCKETS) if seconds <= bound), len(DURATION_BUCKETS))


def histogram_buckets(counts: list[int]) -> list[tuple[str, int]]:
    """Prometheus' cumulative buckets (`le`) of per-bucket counts, `+Inf` last."""
    bounds = [floatToGoString(bound) for bound in DURATION_BUCKETS] + ["+Inf"]
    cumulative, total = [], 0
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        cumulative.append((bound, total))
    return cumulative


@dataclass(frozen=True)
class SensorLag:
    """The mapping sensor's lag on `broker.queue`.

    On a stream: `handled_offset` from the sensor's cursor (None before its first tick), `tail_offset`
    where the stream ends, `unhandled` the offset difference and `oldest_age_seconds` how long ago the
    first message not handled yet was written (0 when none waits, None when it could not be told).
    On a classic queue, `unhandled` is the queue's message count.
    """

    queue: str
    kind: str
    unhandled: int | None
    oldest_age_seconds: float | None
    handled_offset: int | None = None
    tail_offset: int | None = None


@dataclass(frozen=True)
class AuditFindings:
    """What the last successful `audit_sync` run found: datasets by result, and the files missing from
    sync storage of datasets synced before (a dataset never synced has every file missing)."""

    finished_at: float
    in_sync: int
    drifted: int
    never_synced: int
    files_missing: int


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape exports; a source that could not be read is None (and reported down)."""

    tally: SyncTally | None
    runs_by_state: dict[str, int] | None
    last_success_at: float | None
    audit: AuditFindings | None
    lag: SensorLag | None
    instance_read: bool
    # None: not asked (the instance was not read, so the sensor's cursor is unknown).
    broker_read: bool | None


def metric_families(snapshot: Snapshot) -> Iterator[Metric]:
    up = GaugeMetricFamily("bpsync_source_up", "1 if the scrape could read this source, 0 if not", labels=["source"])
    up.add_metric(["dagster_instance"], 1.0 if snapshot.instance_read else 0.0)
    if snapshot.broker_read is not None:
        up.add_metric(["broker"], 1.0 if snapshot.broker_read else 0.0)
    yield up
    if snapshot.tally is not None:
        yield from _tally_families(snapshot.tally)
    if snapshot.runs_by_state is not None:
        runs = GaugeMetricFamily("bpsync_sync_runs", "Sync runs queued (not started) and running", labels=["state"])
        for state in ("queued", "running"):
            runs.add_metric([state], float(snapshot.runs_by_state.get(state, 0)))
        yield runs
    if snapshot.last_success_at is not None:
        yield GaugeMetricFamily(
            "bpsync_last_successful_sync_timestamp_seconds",
            "When a sync last succeeded (the latest materialization of synced_dataset), Unix time",
            value=snapshot.last_success_at,
        )
    if snapshot.audit is not None:
        yield from _audit_families(snapshot.audit)
    if snapshot.lag is not None:
        yield from _lag_families(snapshot.lag)


def _tally_families(tally: SyncTally) -> Iterator[Metric]:
    synced = CounterMetricFamily(
        "bpsync_datasets_synced",
        "Sync runs that ended, by outcome (retried: failed, and run again by Dagster's run retries)",
        labels=["outcome"],
    )
    for outcome in Outcome:
        synced.add_metric([outcome.value], float(tally.outcomes[outcome]))
    yield synced
    yield CounterMetricFamily(
        "bpsync_files_copied", "Files written to sync storage by copy steps", value=tally.files_copied
    )
    yield CounterMetricFamily(
        "bpsync_files_skipped",
        "Files a copy step found already in place (a retry or re-execution) and did not write again",
        value=tally.files_skipped,
    )
    yield CounterMetricFamily(
        "bpsync_copied_bytes", "Bytes written to sync storage by copy steps", value=tally.bytes_copied
    )
    duration = HistogramMetricFamily(
        "bpsync_sync_duration_seconds", "Sync runs from start to end, by outcome", labels=["outcome"]
    )
    for outcome in Outcome:
        counts = tally.duration_counts.get(outcome, [0] * (len(DURATION_BUCKETS) + 1))
        duration.add_metric([outcome.value], histogram_buckets(counts), tally.duration_sums[outcome])
    yield duration


def _audit_families(audit: AuditFindings) -> Iterator[Metric]:
    datasets = GaugeMetricFamily(
        "bpsync_audit_datasets", "Local datasets as the last audit_sync found them", labels=["result"]
    )
    datasets.add_metric(["in_sync"], float(audit.in_sync))
    datasets.add_metric(["drifted"], float(audit.drifted))
    datasets.add_metric(["never_synced"], float(audit.never_synced))
    yield datasets
    yield GaugeMetricFamily(
        "bpsync_audit_missing_files",
        "Files of synced datasets the last audit_sync found missing from sync storage",
        value=audit.files_missing,
    )
    yield GaugeMetricFamily(
        "bpsync_audit_last_run_timestamp_seconds",
        "When the last successful audit_sync run ended, Unix time",
        value=audit.finished_at,
    )


def _lag_families(lag: SensorLag) -> Iterator[Metric]:
    labels = ["queue", "kind"]
    values = [lag.queue, lag.kind]
    if lag.unhandled is not None:
        unhandled = GaugeMetricFamily(
            "bpsync_sensor_lag_messages",
            "Messages of broker.queue the mapping sensor has not handled yet (stream: tail offset minus handled offset)",
            labels=labels,
        )
        unhandled.add_metric(values, float(lag.unhandled))
        yield unhandled
    if lag.oldest_age_seconds is not None:
        age = GaugeMetricFamily(
            "bpsync_sensor_oldest_unhandled_message_age_seconds",
            "How long ago the oldest message the mapping sensor has not handled was written to the stream (0: none)",
            labels=labels,
        )
        age.add_metric(values, lag.oldest_age_seconds)
        yield age
    for name, offset, text in (
        ("bpsync_sensor_handled_offset", lag.handled_offset, "The stream offset the mapping sensor handled last"),
        ("bpsync_stream_tail_offset", lag.tail_offset, "The last offset of the mapping stream"),
    ):
        if offset is not None:
            family = GaugeMetricFamily(name, text, labels=labels)
            family.add_metric(values, float(offset))
            yield family


def unhandled_messages(first_unhandled: int | None, tail: int | None) -> int:
    """Offsets from the first one not handled to the stream's tail; 0 when nothing waits. A tail not
    read in time counts as the first unhandled offset."""
    if first_unhandled is None:
        return 0
    return max(tail if tail is not None else first_unhandled, first_unhandled) - first_unhandled + 1


def find_write_time(
    first_offset_from: Callable[[int], int | None], offset: int, now: int, max_probes: int
) -> int | None:
    """The second at which the stream chunk holding `offset` was written, to within `AGE_PRECISION` of
    its age (at least 1 s), or None if `max_probes` reads did not find it.

    `first_offset_from(second)` is the first offset a stream consumer attached at that time gets (the
    first chunk written at or after it), None if none was. Its result only grows with the second, so the
    time is found by doubling steps back from `now`, then bisection: about twice log2(age) reads.
    """
    newer = now + 1
    step, probes = 1, 0
    older: int | None = None
    while older is None:
        if probes == max_probes:
            return None
        second = now - step
        probes += 1
        found = first_offset_from(second)
        if found is not None and found <= offset:
            older = second
        else:
            newer, step = second, step * 2
    while newer - older > max(1, math.floor((now - older) * AGE_PRECISION)) and probes < max_probes:
        middle = (older + newer) // 2
        probes += 1
        found = first_offset_from(middle)
        if found is not None and found <= offset:
            older = middle
        else:
            newer = middle
    return older
