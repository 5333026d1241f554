"""The mapping sensor across a broker restart, on a private RabbitMQ node this module stops and starts.

The shared RabbitMQ on 5672 is never touched. Ticks are evaluated directly (no daemon), as in
`test_mapping_sensor.py`. While the broker is down a tick reports it and keeps no cursor; once the
broker is back, a tick with the last good cursor requests exactly what arrived since: nothing is
lost and nothing is requested twice.
"""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pika.exceptions
import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.private_rabbitmq import PrivateRabbitMQ
from bpsync_dagster_tests.support.rabbitmq import Topology
from bpsync_dagster_tests.support.sensor_ticks import (
    configure_sensor,
    evaluate_tick,
    mapping,
    stream_position,
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitMQ]:
    with PrivateRabbitMQ(tmp_path_factory.mktemp("private-rabbitmq")) as node:
        yield node


def _topology(broker: PrivateRabbitMQ, node: Node, kind: str) -> Topology:
    names = Topology(
        f"{node.prefix}-sda", f"{node.prefix}-mapping_{kind}", f"{node.prefix}-errors", broker.connection_parameters()
    )
    names.declare(kind)
    return names


def _assert_broker_down(broker: PrivateRabbitMQ, instance, cursor: str) -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        broker.connection()
    down = evaluate_tick(instance, cursor)
    assert not down.run_requests and down.cursor is None
    assert f"cannot connect to the broker 127.0.0.1:{broker.port}" in down.skip_reason.skip_message


def test_a_stream_is_read_on_after_the_broker_restarts(broker: PrivateRabbitMQ, sensor_node: Node, monkeypatch) -> None:
    names = _topology(broker, sensor_node, "stream")
    instance = configure_sensor(sensor_node, monkeypatch, names, BROKER_PORT=str(broker.port))

    pinned = evaluate_tick(instance, None)
    assert stream_position(pinned.cursor) == {
        "queue": names.mapping_queue,
        "kind": "stream",
        "offset": -1,
        "generation": 0,
    }

    before = [sensor_node.dataset_id(f"before-{index}") for index in range(2)]
    for index, dataset_id in enumerate(before):
        names.publish(mapping(dataset_id, f"ACC-B{index}"))
    read = evaluate_tick(instance, pinned.cursor)
    assert [request.tags["dataset_id"] for request in read.run_requests] == before
    assert [request.run_key for request in read.run_requests] == [f"{names.mapping_queue}:0:{n}" for n in (0, 1)]
    good_cursor = read.cursor
    assert json.loads(good_cursor)["offset"] == 1

    broker.stop()
    _assert_broker_down(broker, instance, good_cursor)
    broker.start(queues=[names.mapping_queue, names.error_queue])

    after = [sensor_node.dataset_id(f"after-{index}") for index in range(3)]
    for index, dataset_id in enumerate(after):
        names.publish(mapping(dataset_id, f"ACC-A{index}"))
    resumed = evaluate_tick(instance, good_cursor)

    assert [request.tags["dataset_id"] for request in resumed.run_requests] == after
    assert [request.run_key for request in resumed.run_requests] == [f"{names.mapping_queue}:0:{n}" for n in (2, 3, 4)]
    assert resumed.run_requests[0].partition_key == after[0]
    assert resumed.run_requests[0].run_config == {
        "ops": {"synced_dataset": {"ops": {"fetch_file_records": {"config": {"accession_ids": ["ACC-A0"]}}}}}
    }
    assert stream_position(resumed.cursor) == {
        "queue": names.mapping_queue,
        "kind": "stream",
        "offset": 4,
        "generation": 0,
    }
    assert names.error_count() == 0

    idle = evaluate_tick(instance, resumed.cursor)
    assert not idle.run_requests and idle.cursor == resumed.cursor

    # The messages from before the restart are still in the stream, under the same offsets.
    from_start = json.dumps({"queue": names.mapping_queue, "kind": "stream", "offset": -1, "generation": 0})
    replay = evaluate_tick(instance, from_start)
    assert [request.tags["dataset_id"] for request in replay.run_requests] == before + after


def test_classic_queue_messages_survive_the_broker_restart(
    broker: PrivateRabbitMQ, sensor_node: Node, monkeypatch
) -> None:
    names = _topology(broker, sensor_node, "classic")
    instance = configure_sensor(sensor_node, monkeypatch, names, BROKER_PORT=str(broker.port))

    empty = evaluate_tick(instance, None)
    assert not empty.run_requests
    good_cursor = empty.cursor
    assert json.loads(good_cursor)["kind"] == "classic"

    datasets = [sensor_node.dataset_id(f"queued-{index}") for index in range(2)]
    message_ids = [str(uuid.uuid4()) for _ in datasets]
    for index, (dataset_id, message_id) in enumerate(zip(datasets, message_ids, strict=True)):
        names.publish(mapping(dataset_id, f"ACC-Q{index}"), message_id=message_id)
    assert names.ready_count() == 2

    broker.stop()
    _assert_broker_down(broker, instance, good_cursor)
    broker.start(queues=[names.mapping_queue, names.error_queue])

    assert names.ready_count() == 2
    resumed = evaluate_tick(instance, good_cursor)

    assert [request.tags["dataset_id"] for request in resumed.run_requests] == datasets
    assert [request.run_key for request in resumed.run_requests] == [
        f"{names.mapping_queue}:{mid}" for mid in message_ids
    ]
    assert json.loads(resumed.cursor)["kind"] == "classic"
    # No run exists yet, so nothing was acked: the messages wait in the queue for the daemon's runs.
    assert names.ready_count() == 2
    assert names.error_count() == 0


def test_the_private_node_is_separate_from_the_shared_one(broker: PrivateRabbitMQ) -> None:
    assert broker.port != 5672 and broker.dist_port not in (25672, broker.port)
    assert broker.node_name.startswith("bpsync-") and broker.node_name.endswith("@localhost")
    assert not (Path(broker.directory) / "plugins" / "rabbitmq_management").exists()
    assert not any(
        path.name.startswith("rabbitmq_management") for path in (Path(broker.directory) / "plugins").iterdir()
    )
