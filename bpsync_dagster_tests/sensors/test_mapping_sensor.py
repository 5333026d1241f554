"""The mapping sensor's ticks against this machine's RabbitMQ and a Dagster instance on Postgres.

The daemon is not involved here: each test evaluates ticks itself (and, for a classic queue,
creates the runs the daemon would create); `test_with_daemon.py` runs the real daemon.
"""

import json

import jsonschema

from bpsync_dagster_tests.support.environment import PROJECT_ROOT, Node
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.sensor_ticks import (
    configure_sensor,
    evaluate_tick,
    mapping,
    store_runs,
    stream_position,
)

INFO_ERROR_SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "federated" / "info-error.json").read_text())


def _publish_every_kind(node: Node, names: Topology) -> dict[str, str]:
    local = node.dataset_id("local")
    names.publish(mapping(local, "ACC-1", "ACC-2"), correlation_id="corr-local")
    names.publish(mapping("OTHER-NODE-0001", "ACC-9"), correlation_id="corr-foreign")
    names.publish(b"{not json", correlation_id="corr-notjson")
    names.publish({"type": "release", "dataset_id": local}, correlation_id="corr-release")
    names.publish(mapping(node.dataset_id("empty")), correlation_id="corr-empty")
    names.publish(b"\xff\xfe not utf-8", correlation_id="corr-binary")
    return {"local": local}


def _assert_info_errors(names: Topology) -> None:
    errors = names.error_messages()
    for body, properties in errors:
        jsonschema.validate(body, INFO_ERROR_SCHEMA)
        assert body["error"] == "Message validation failed in sync service"
        assert properties.content_type == "application/json" and properties.delivery_mode == 2
    by_correlation = {properties.correlation_id: body for body, properties in errors}
    assert sorted(by_correlation) == ["corr-binary", "corr-empty", "corr-notjson", "corr-release"]
    assert by_correlation["corr-notjson"]["original-message"] == "{not json"
    assert "not JSON" in by_correlation["corr-notjson"]["reason"]
    assert "accession_ids is empty" in by_correlation["corr-empty"]["reason"]
    assert "type: 'mapping' was expected" in by_correlation["corr-release"]["reason"]
    assert "UTF-8" in by_correlation["corr-binary"]["reason"]


def test_stream_ticks_request_runs_for_local_datasets_and_answer_bad_messages(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        names.publish(mapping(sensor_node.dataset_id("before-first-start"), "ACC-0"))
        instance = configure_sensor(sensor_node, monkeypatch, names)

        first = evaluate_tick(instance, None)
        assert not first.run_requests
        assert stream_position(first.cursor) == {
            "queue": names.mapping_queue,
            "kind": "stream",
            "offset": 0,
            "generation": 0,
        }

        ids = _publish_every_kind(sensor_node, names)
        names.publish(mapping(ids["local"], "ACC-1", "ACC-2"), correlation_id="corr-duplicate")
        second = evaluate_tick(instance, first.cursor)

        assert [request.tags["dataset_id"] for request in second.run_requests] == [ids["local"], ids["local"]]
        assert [request.run_key for request in second.run_requests] == [
            f"{names.mapping_queue}:0:1",
            f"{names.mapping_queue}:0:7",
        ]
        assert second.run_requests[0].tags["correlation_id"] == "corr-local"
        assert second.run_requests[0].partition_key == ids["local"]
        assert second.run_requests[0].run_config == {
            "ops": {
                "synced_dataset": {"ops": {"fetch_file_records": {"config": {"accession_ids": ["ACC-1", "ACC-2"]}}}}
            }
        }
        (partitions_added,) = second.dynamic_partitions_requests
        assert (partitions_added.partitions_def_name, partitions_added.partition_keys) == ("dataset_id", [ids["local"]])
        assert json.loads(second.cursor)["offset"] == 7
        _assert_info_errors(names)

        third = evaluate_tick(instance, second.cursor)
        assert not third.run_requests and third.cursor == second.cursor


def test_a_fresh_stream_start_of_first_reads_everything(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        names.publish(mapping(sensor_node.dataset_id("old"), "ACC-0"))
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")

        result = evaluate_tick(instance, None)

        assert [request.run_key for request in result.run_requests] == [f"{names.mapping_queue}:0:0"]


def test_an_empty_stream_is_pinned_to_its_first_offset(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        pinned = evaluate_tick(instance, None)
        assert json.loads(pinned.cursor)["offset"] == -1

        names.publish(mapping(sensor_node.dataset_id("after-pin"), "ACC-1"))
        result = evaluate_tick(instance, pinned.cursor)

        assert [request.run_key for request in result.run_requests] == [f"{names.mapping_queue}:0:0"]


def test_classic_queue_messages_are_acked_only_once_their_run_exists(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "classic") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        ids = _publish_every_kind(sensor_node, names)
        for _ in range(2):
            names.publish(mapping(ids["local"], "ACC-3"), message_id="same-message-twice")

        first = evaluate_tick(instance, None)

        assert json.loads(first.cursor)["kind"] == "classic"
        request, duplicated = first.run_requests
        assert duplicated.run_key == f"{names.mapping_queue}:same-message-twice"
        _assert_info_errors(names)
        assert names.ready_count() == 3

        again = evaluate_tick(instance, first.cursor)
        assert [r.run_key for r in again.run_requests] == [request.run_key, duplicated.run_key]
        assert names.ready_count() == 3

        store_runs(instance, again)
        done = evaluate_tick(instance, again.cursor)

        assert not done.run_requests
        assert names.ready_count() == 0


def test_an_unreachable_broker_is_reported_not_raised(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, BROKER_PORT="1")
        cursor = json.dumps({"queue": names.mapping_queue, "kind": "stream", "offset": 3, "generation": 0})

        result = evaluate_tick(instance, cursor)

        assert not result.run_requests and result.cursor is None
        assert "cannot connect to the broker 127.0.0.1:1" in result.skip_reason.skip_message


def test_a_missing_queue_is_reported_not_raised(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, BROKER_QUEUE=f"{sensor_node.prefix}-absent")

        result = evaluate_tick(instance, None)

        assert "NOT_FOUND" in result.skip_reason.skip_message


def test_a_cursor_of_another_queue_is_not_applied(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        names.publish(mapping(sensor_node.dataset_id("old"), "ACC-0"))
        instance = configure_sensor(sensor_node, monkeypatch, names)
        other = json.dumps({"queue": "another-queue", "kind": "stream", "offset": 41, "generation": 3})

        result = evaluate_tick(instance, other)

        assert stream_position(result.cursor) == {
            "queue": names.mapping_queue,
            "kind": "stream",
            "offset": 0,
            "generation": 0,
        }
