"""A mapping stream deleted and declared again (real RabbitMQ, ticks evaluated in the test process).

The new stream numbers its offsets from 0 again, so the sensor's cursor no longer says what was read.
The sensor must notice that only on evidence (a message read that is not the one it handled at that
offset, or a first message that is not the stream's first message it saw), never because a read
returned nothing; it then reads the new stream from its start, and a message whose run already
synced the dataset gets no second run.
"""

import json

import dagster as dg

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, evaluate_ticks, mapping
from bpsync_dagster_tests.support.streams import execute_request, recreate_stream


def _synced_message(node: Node, name: str) -> dict:
    dataset_id = node.dataset_id(name)
    (seeded,) = node.add_dataset(dataset_id, [(f"{name}.c4gh", name.encode() * 40)])
    return mapping(dataset_id, seeded.accession_id)


def test_a_recreated_stream_shorter_than_the_cursor_is_noticed_on_evidence_only(sensor_node: Node, monkeypatch) -> None:
    synced = _synced_message(sensor_node, "synced")
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        names.publish(synced, correlation_id="corr-synced")
        for number in range(4):
            names.publish(mapping(f"OTHER-{number}", "ACC-X"))
        first = evaluate_tick(instance, None)
        (request,) = first.run_requests
        assert execute_request(instance, request).status == dg.DagsterRunStatus.SUCCESS
        assert json.loads(first.cursor)["offset"] == 4

        recreate_stream(names)
        empty = evaluate_tick(instance, first.cursor)
        assert not empty.run_requests
        assert empty.cursor == first.cursor, "an empty stream is no evidence: the cursor must stay"

        fresh = sensor_node.dataset_id("fresh")
        names.publish(mapping(fresh, "ACC-F"), correlation_id="corr-fresh")
        names.publish(synced, correlation_id="corr-synced")
        requests, cursor = evaluate_ticks(instance, empty.cursor, 2)

    assert [(r.run_key, r.tags["dataset_id"]) for r in requests] == [(f"{names.mapping_queue}:1:0", fresh)]
    assert (json.loads(cursor)["generation"], json.loads(cursor)["offset"]) == (1, 1)


def test_a_recreated_stream_longer_than_the_cursor_is_read_from_its_start(sensor_node: Node, monkeypatch) -> None:
    synced = _synced_message(sensor_node, "synced")
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        names.publish(synced, correlation_id="corr-synced")
        names.publish(mapping("OTHER-0", "ACC-X"))
        first = evaluate_tick(instance, None)
        (request,) = first.run_requests
        assert execute_request(instance, request).status == dg.DagsterRunStatus.SUCCESS
        assert json.loads(first.cursor)["offset"] == 1

        recreate_stream(names)
        names.publish(synced, correlation_id="corr-synced")
        later = [sensor_node.dataset_id(f"later-{number}") for number in range(2)]
        for number, dataset_id in enumerate(later):
            names.publish(mapping(dataset_id, f"ACC-L{number}"), correlation_id=f"corr-later-{number}")
        requests, cursor = evaluate_ticks(instance, first.cursor, 2)

    assert [(r.run_key, r.tags["dataset_id"]) for r in requests] == [
        (f"{names.mapping_queue}:1:1", later[0]),
        (f"{names.mapping_queue}:1:2", later[1]),
    ]
    assert (json.loads(cursor)["generation"], json.loads(cursor)["offset"]) == (1, 2)
