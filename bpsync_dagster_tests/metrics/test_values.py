"""The values `bpsync metrics` exports, computed from plain inputs: the tally of ended syncs, the
exposition of every family, the sensor's lag and the search of a stream message's write time."""

import bisect

import pytest

from bpsync_dagster.metrics.values import (
    AuditFindings,
    EndedSync,
    Outcome,
    SensorLag,
    Snapshot,
    SyncTally,
    find_write_time,
    unhandled_messages,
)
from bpsync_dagster_tests.support.metrics_exporter import exposition


def _snapshot(**changes: object) -> Snapshot:
    values: dict[str, object] = {
        "tally": SyncTally(),
        "runs_by_state": {"queued": 3, "running": 1},
        "last_success_at": 1_700_000_000.0,
        "audit": AuditFindings(1_700_000_100.0, in_sync=5, drifted=2, never_synced=1, files_missing=4),
        "lag": SensorLag("mapping_stream", "stream", 7, 42.0, handled_offset=10, tail_offset=17),
        "instance_read": True,
        "broker_read": True,
        **changes,
    }
    return Snapshot(**values)  # type: ignore[arg-type]


def test_ended_syncs_are_counted_by_outcome_with_their_files_bytes_and_durations() -> None:
    tally = SyncTally()
    tally.add(EndedSync(Outcome.SUCCESS, 12.0, files_copied=3, files_skipped=1, bytes_copied=3000))
    tally.add(EndedSync(Outcome.SUCCESS, 400.0, files_copied=2, bytes_copied=500))
    tally.add(EndedSync(Outcome.FAILURE, 3.0, files_copied=1, bytes_copied=10))
    tally.add(EndedSync(Outcome.CANCELED, None))

    samples = exposition(_snapshot(tally=tally))

    assert samples[("bpsync_datasets_synced_total", (("outcome", "success"),))] == 2
    assert samples[("bpsync_datasets_synced_total", (("outcome", "failure"),))] == 1
    assert samples[("bpsync_datasets_synced_total", (("outcome", "retried"),))] == 0
    assert samples[("bpsync_datasets_synced_total", (("outcome", "canceled"),))] == 1
    assert samples[("bpsync_files_copied_total", ())] == 6
    assert samples[("bpsync_files_skipped_total", ())] == 1
    assert samples[("bpsync_copied_bytes_total", ())] == 3510
    success = (("outcome", "success"),)
    assert samples[("bpsync_sync_duration_seconds_count", success)] == 2
    assert samples[("bpsync_sync_duration_seconds_sum", success)] == 412.0
    assert samples[("bpsync_sync_duration_seconds_bucket", (("le", "5.0"), ("outcome", "success")))] == 0
    assert samples[("bpsync_sync_duration_seconds_bucket", (("le", "15.0"), ("outcome", "success")))] == 1
    assert samples[("bpsync_sync_duration_seconds_bucket", (("le", "300.0"), ("outcome", "success")))] == 1
    assert samples[("bpsync_sync_duration_seconds_bucket", (("le", "600.0"), ("outcome", "success")))] == 2
    assert samples[("bpsync_sync_duration_seconds_bucket", (("le", "+Inf"), ("outcome", "success")))] == 2
    # A run that never started has no duration.
    assert samples[("bpsync_sync_duration_seconds_count", (("outcome", "canceled"),))] == 0


def test_every_source_shows_in_its_families() -> None:
    samples = exposition(_snapshot())

    assert samples[("bpsync_sync_runs", (("state", "queued"),))] == 3
    assert samples[("bpsync_sync_runs", (("state", "running"),))] == 1
    assert samples[("bpsync_last_successful_sync_timestamp_seconds", ())] == 1_700_000_000.0
    assert samples[("bpsync_audit_datasets", (("result", "drifted"),))] == 2
    assert samples[("bpsync_audit_datasets", (("result", "never_synced"),))] == 1
    assert samples[("bpsync_audit_datasets", (("result", "in_sync"),))] == 5
    assert samples[("bpsync_audit_missing_files", ())] == 4
    queue = (("kind", "stream"), ("queue", "mapping_stream"))
    assert samples[("bpsync_sensor_lag_messages", queue)] == 7
    assert samples[("bpsync_sensor_oldest_unhandled_message_age_seconds", queue)] == 42.0
    assert samples[("bpsync_sensor_handled_offset", queue)] == 10
    assert samples[("bpsync_stream_tail_offset", queue)] == 17
    assert samples[("bpsync_source_up", (("source", "broker"),))] == 1


def test_a_source_not_read_is_reported_down_and_its_values_left_out() -> None:
    samples = exposition(
        _snapshot(
            tally=None,
            runs_by_state=None,
            last_success_at=None,
            audit=None,
            lag=None,
            instance_read=False,
            broker_read=None,
        )
    )

    assert samples == {("bpsync_source_up", (("source", "dagster_instance"),)): 0.0}


def test_a_broker_not_read_is_reported_down_beside_the_instance_values() -> None:
    samples = exposition(_snapshot(lag=None, broker_read=False))

    assert samples[("bpsync_source_up", (("source", "broker"),))] == 0
    assert samples[("bpsync_source_up", (("source", "dagster_instance"),))] == 1
    assert not [name for name, _ in samples if name.startswith(("bpsync_sensor_", "bpsync_stream_"))]


def test_positions_only_move_forward() -> None:
    tally = SyncTally()
    tally.passed("RUN_SUCCESS", 10)
    tally.passed("RUN_SUCCESS", 4)
    assert tally.positions == {"RUN_SUCCESS": 10}


@pytest.mark.parametrize(
    ("first_unhandled", "tail", "expected"), [(None, None, 0), (None, 9, 0), (5, 9, 5), (5, None, 1), (5, 5, 1)]
)
def test_unhandled_messages_run_from_the_first_unhandled_offset_to_the_tail(
    first_unhandled: int | None, tail: int | None, expected: int
) -> None:
    assert unhandled_messages(first_unhandled, tail) == expected


class _Stream:
    """Chunks as a stream keeps them: (first offset, second written), in order; a consumer attached at a
    time gets the first chunk written at or after it. Counts the reads."""

    def __init__(self, chunks: list[tuple[int, int]]) -> None:
        self.chunks = chunks
        self.reads = 0

    def first_offset_from(self, second: int) -> int | None:
        self.reads += 1
        index = bisect.bisect_left([written for _, written in self.chunks], second)
        return self.chunks[index][0] if index < len(self.chunks) else None


NOW = 1_800_000_000


@pytest.mark.parametrize("age", [0, 1, 7, 100, 3600, 86_400 * 6])
def test_a_message_write_time_is_found_to_within_five_percent_of_its_age(age: int) -> None:
    stream = _Stream([(0, NOW - 10 * 86_400), (40, NOW - age), (41, NOW - age // 2), (42, NOW)])

    found = find_write_time(stream.first_offset_from, 40, NOW, max_probes=64)

    assert found is not None
    assert NOW - age - max(1, 0.05 * age) <= found <= NOW - age
    assert stream.reads <= 2 * max(1, age).bit_length() + 6


def test_a_message_in_a_chunk_with_earlier_ones_takes_the_chunk_time() -> None:
    stream = _Stream([(0, NOW - 500), (10, NOW - 100)])

    found = find_write_time(stream.first_offset_from, 15, NOW, max_probes=64)

    assert found is not None and NOW - 105 <= found <= NOW - 100


def test_the_search_gives_up_after_its_reads() -> None:
    stream = _Stream([(0, NOW - 86_400)])

    assert find_write_time(stream.first_offset_from, 0, NOW, max_probes=5) is None
    assert stream.reads == 5
