"""The queue kinds and stream options of the spec against the real broker (ticks evaluated in the
test process): `sync.sensor.streamStart` as an offset and as an ISO timestamp, `sync.sensor.queueType`
(stream, classic, auto), a quorum queue, and offsets removed by the stream's retention."""

import datetime
import json
import time

import dagster as dg
import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, mapping, store_runs
from bpsync_dagster_tests.support.streams import QUORUM, STREAM, publish_padded, stream_offsets, topology_with


def _offsets(requests: list[dg.RunRequest]) -> list[int]:
    return [int(request.run_key.rsplit(":", 1)[1]) for request in requests]


def test_stream_start_as_an_offset_starts_there(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        for number in range(5):
            names.publish(mapping(sensor_node.dataset_id(f"numbered-{number}"), "ACC-1"))
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="3")

        result = evaluate_tick(instance, None)

    assert _offsets(result.run_requests) == [3, 4]
    assert json.loads(result.cursor)["offset"] == 4


def test_stream_start_as_an_iso_timestamp_starts_at_the_first_message_published_then(
    sensor_node: Node, monkeypatch
) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        for number in range(2):
            names.publish(mapping(sensor_node.dataset_id(f"before-{number}"), "ACC-1"))
        time.sleep(1.1)
        start = datetime.datetime.now(datetime.UTC).isoformat()
        after = [sensor_node.dataset_id(f"after-{number}") for number in range(2)]
        for dataset_id in after:
            names.publish(mapping(dataset_id, "ACC-1"))
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART=start)

        result = evaluate_tick(instance, None)

    assert [request.tags["dataset_id"] for request in result.run_requests] == after
    assert _offsets(result.run_requests) == [2, 3]


@pytest.mark.parametrize("kind", ["stream", "classic"])
def test_queue_type_names_the_kind_of_queue_that_is_read(sensor_node: Node, monkeypatch, kind: str) -> None:
    with topology(sensor_node.prefix, kind) as names:
        dataset_id = sensor_node.dataset_id(kind)
        names.publish(mapping(dataset_id, "ACC-1"), message_id=f"message-{kind}")
        extra = {"SYNC_SENSOR_QUEUETYPE": kind, "SYNC_SENSOR_STREAMSTART": "first"}
        instance = configure_sensor(sensor_node, monkeypatch, names, **extra)

        result = evaluate_tick(instance, None)

    assert json.loads(result.cursor)["kind"] == kind
    assert [request.tags["dataset_id"] for request in result.run_requests] == [dataset_id]


def test_queue_type_stream_on_a_classic_queue_is_refused_and_loses_nothing(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "classic") as names:
        names.publish(mapping(sensor_node.dataset_id("kept"), "ACC-1"))
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_QUEUETYPE="stream")

        result = evaluate_tick(instance, None)

        assert not result.run_requests and result.cursor is None
        assert f"broker.queue {names.mapping_queue!r} is not a stream" in result.skip_reason.skip_message
        assert "sync.sensor.queueType" in result.skip_reason.skip_message
        assert names.ready_count() == 1


def test_queue_type_classic_on_a_stream_is_refused_and_moves_nothing(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        names.publish(mapping(sensor_node.dataset_id("kept"), "ACC-1"))
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_QUEUETYPE="classic")

        result = evaluate_tick(instance, None)

    assert not result.run_requests and result.cursor is None
    assert "basic.get not supported by stream queues" in result.skip_reason.skip_message


def test_a_quorum_queue_is_read_like_a_classic_queue(sensor_node: Node, monkeypatch) -> None:
    with topology_with(sensor_node.prefix, "quorum", QUORUM) as names:
        dataset_id = sensor_node.dataset_id("quorum")
        names.publish(mapping(dataset_id, "ACC-1"), message_id="quorum-message")
        instance = configure_sensor(sensor_node, monkeypatch, names)

        first = evaluate_tick(instance, None)
        (request,) = first.run_requests
        assert json.loads(first.cursor)["kind"] == "classic"
        assert request.run_key == f"{names.mapping_queue}:quorum-message"
        assert names.ready_count() == 1

        store_runs(instance, first)
        done = evaluate_tick(instance, first.cursor)

        assert not done.run_requests
        assert names.ready_count() == 0


# Small segments roll over often, and each new segment takes an offset of its own (no message has it).
# (Far smaller sizes, a few KB, leave RabbitMQ 3.10's stream unreadable once retention runs.)
SMALL_SEGMENTS = {**STREAM, "x-stream-max-segment-size-bytes": 20_000}
PADDING = 1000


def test_offsets_removed_by_retention_before_they_were_read_are_logged_loudly(
    sensor_node: Node, monkeypatch, capfd: pytest.CaptureFixture[str]
) -> None:
    retention = {**SMALL_SEGMENTS, "x-max-length-bytes": 60_000}
    with topology_with(sensor_node.prefix, "stream", retention) as names:
        publish_padded(names, mapping(sensor_node.dataset_id("read"), "ACC-1"), PADDING)
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        read = evaluate_tick(instance, None)
        assert _offsets(read.run_requests) == [0]

        for number in range(150):
            publish_padded(names, mapping(sensor_node.dataset_id(f"later-{number}"), "ACC-1"), PADDING)
        first_kept = stream_offsets(names)[0]
        assert first_kept > 2, "retention removed nothing: the test's sizes need adjusting"
        capfd.readouterr()
        after = evaluate_tick(instance, read.cursor)

    logged = capfd.readouterr()
    assert f"offsets 1 to {first_kept - 1} are gone before they were read" in logged.out + logged.err
    assert _offsets(after.run_requests)[0] == first_kept


def test_a_segment_boundary_is_not_taken_for_offsets_removed_by_retention(
    sensor_node: Node, monkeypatch, capfd: pytest.CaptureFixture[str]
) -> None:
    with topology_with(sensor_node.prefix, "stream", SMALL_SEGMENTS) as names:
        for number in range(40):
            publish_padded(names, mapping(sensor_node.dataset_id(f"segment-{number}"), "ACC-1"), PADDING)
        offsets = stream_offsets(names)
        hole = next(offset for offset in range(offsets[-1]) if offset not in offsets)
        # The first tick reads up to the offset before the hole, the second from there.
        batch = str(hole)
        instance = configure_sensor(
            sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first", SYNC_SENSOR_BATCHSIZE=batch
        )
        first = evaluate_tick(instance, None)
        assert json.loads(first.cursor)["offset"] == hole - 1
        capfd.readouterr()
        second = evaluate_tick(instance, first.cursor)

    logged = capfd.readouterr()
    assert "are gone before they were read" not in logged.out + logged.err
    assert _offsets(second.run_requests)[0] == hole + 1
