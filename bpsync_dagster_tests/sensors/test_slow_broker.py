"""The mapping sensor on a slow broker: a delaying proxy between the sensor and the real RabbitMQ
(ticks evaluated in the test process, as the daemon would).

A broker that answers late delays the sync and changes nothing else: no tick stalls for ever, no
message is requested twice or skipped, and a read that returns nothing is not taken for a stream
that was deleted and declared again.
"""

import datetime
import json
import threading
import time

import dagster as dg
import pytest

from bpsync_dagster_tests.support.daemon import wait_until
from bpsync_dagster_tests.support.delaying_proxy import DelayingProxy, Pacing
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, evaluate_ticks, mapping

BROKER_PORT = 5672
# Sensor evaluation times out after 60 s; a tick must stay well under it.
TICK_LIMIT_SECONDS = 45


def _offset(request: dg.RunRequest) -> int:
    return int(request.run_key.rsplit(":", 1)[1])


def _timed_tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[dg.SensorResult, float]:
    started = time.monotonic()
    result = evaluate_tick(instance, cursor)
    return result, time.monotonic() - started


def test_a_broker_that_answers_one_to_three_seconds_late_delays_the_reads_and_changes_nothing_else(
    sensor_node: Node, monkeypatch
) -> None:
    pacing = Pacing(delay=1.0, gap=0.0, jitter=2.0, by_frame=True)
    with topology(sensor_node.prefix, "stream") as names, DelayingProxy(BROKER_PORT, pacing, seed=13) as proxy:
        # The queue's kind is named: detecting it costs a connection more, which the daemon test covers.
        extra = {"BROKER_PORT": str(proxy.port), "SYNC_SENSOR_STREAMSTART": "first", "SYNC_SENSOR_QUEUETYPE": "stream"}
        instance = configure_sensor(sensor_node, monkeypatch, names, **extra)
        datasets = [sensor_node.dataset_id(f"late-{number}") for number in range(3)]
        for dataset_id in datasets:
            names.publish(mapping(dataset_id, "ACC-1"))

        requests: list[dg.RunRequest] = []
        cursor = None
        for _ in range(3):
            result, seconds = _timed_tick(instance, cursor)
            assert seconds < TICK_LIMIT_SECONDS, f"a tick took {seconds:.1f} s"
            assert result.cursor is not None, result.skip_reason
            assert json.loads(result.cursor)["generation"] == 0
            requests += result.run_requests
            cursor = result.cursor
            if len(requests) >= len(datasets):
                break

        assert [request.tags["dataset_id"] for request in requests] == datasets
        assert [_offset(request) for request in requests] == [0, 1, 2]
        idle, seconds = _timed_tick(instance, cursor)
        assert seconds < TICK_LIMIT_SECONDS
        assert not idle.run_requests
        assert (json.loads(idle.cursor)["offset"], json.loads(idle.cursor)["generation"]) == (2, 0)


def test_a_read_from_last_that_returns_nothing_is_no_evidence_of_a_recreated_stream(
    sensor_node: Node, monkeypatch
) -> None:
    slow_last = DelayingProxy(BROKER_PORT, Pacing(delay=5.0, gap=0.0), slow_consumers=lambda offset: offset == "last")
    with topology(sensor_node.prefix, "stream") as names, slow_last as proxy:
        instance = configure_sensor(
            sensor_node, monkeypatch, names, BROKER_PORT=str(proxy.port), SYNC_SENSOR_STREAMSTART="first"
        )
        for number in range(3):
            names.publish(mapping(sensor_node.dataset_id(f"once-{number}"), "ACC-1"))
        read = evaluate_tick(instance, None)
        assert [_offset(request) for request in read.run_requests] == [0, 1, 2]

        idle = evaluate_tick(instance, read.cursor)
        again = evaluate_tick(instance, idle.cursor)

    assert idle.cursor == read.cursor, "a silent read must change nothing"
    assert not idle.run_requests and not again.run_requests


def _slow_position_reads(offset: object) -> bool:
    """The reads that find where a first start begins: the stream's tail, or a point in time."""
    return offset == "last" or isinstance(offset, datetime.datetime)


@pytest.mark.parametrize("stream_start", ["next", "timestamp"])
def test_a_first_start_whose_position_reads_are_slow_replays_nothing(
    sensor_node: Node, monkeypatch, stream_start: str
) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        for number in range(3):
            names.publish(mapping(sensor_node.dataset_id(f"history-{number}"), "ACC-1"))
        time.sleep(1.1)
        start = "next" if stream_start == "next" else datetime.datetime.now(datetime.UTC).isoformat()
        slow = DelayingProxy(BROKER_PORT, Pacing(delay=5.0, gap=0.0), slow_consumers=_slow_position_reads)
        with slow as proxy:
            instance = configure_sensor(
                sensor_node, monkeypatch, names, BROKER_PORT=str(proxy.port), SYNC_SENSOR_STREAMSTART=start
            )
            first = evaluate_tick(instance, None)
            assert first.cursor is not None, first.skip_reason

            proxy.slowing = False
            new = sensor_node.dataset_id("new")
            names.publish(mapping(new, "ACC-2"))
            later, _ = evaluate_ticks(instance, first.cursor, 2)
            requests = [*first.run_requests, *later]

    assert [request.tags["dataset_id"] for request in requests] == [new]
    assert [_offset(request) for request in requests] == [3]


def _keep_publishing(names: Topology, node: Node, stop: threading.Event, published: list[str]) -> None:
    deadline = time.monotonic() + 15
    while not stop.is_set() and time.monotonic() < deadline:
        dataset_id = node.dataset_id(f"during-{len(published)}")
        names.publish(mapping(dataset_id, "ACC-D"))
        published.append(dataset_id)
        time.sleep(0.05)


def test_finding_the_tail_on_a_first_start_reads_one_chunk_while_messages_keep_coming(
    sensor_node: Node, monkeypatch
) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        for number in range(20):
            names.publish(mapping(sensor_node.dataset_id(f"before-{number}"), "ACC-B"))
        instance = configure_sensor(sensor_node, monkeypatch, names)
        stop = threading.Event()
        published: list[str] = []
        publisher = threading.Thread(target=_keep_publishing, args=(names, sensor_node, stop, published))
        publisher.start()
        try:
            wait_until(lambda: len(published) >= 10, 30, "the publisher to get going", interval=0.02)
            first, seconds = _timed_tick(instance, None)
        finally:
            stop.set()
            publisher.join()
        assert seconds < 5, f"the first tick took {seconds:.1f} s to find the stream's tail"
        assert json.loads(first.cursor)["offset"] >= 19

        later, _ = evaluate_ticks(instance, first.cursor, 3)
        requests = [*first.run_requests, *later]

    # Everything after the tail the first tick found, once each; nothing from before the first tick.
    offsets = [_offset(request) for request in requests]
    assert offsets and offsets[0] >= 20
    assert offsets == list(range(offsets[0], 20 + len(published)))
