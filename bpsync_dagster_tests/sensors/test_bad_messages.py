"""Bad messages on the mapping stream do not stop the sensor: each gets one info-error naming its
cause, and the good message after them still becomes a run (real RabbitMQ stream, real Dagster
instance; ticks evaluated in the test process as the daemon would)."""

import json

import dagster as dg
import jsonschema
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.environment import PROJECT_ROOT, Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, mapping, store_runs

INFO_ERROR_SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "federated" / "info-error.json").read_text())
MIB = 1024 * 1024


def correlation_ids_of_runs(instance: dg.DagsterInstance, queue: str) -> list[str]:
    """The correlation IDs of the runs Dagster holds for messages of `queue`."""
    runs = instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}))
    return sorted(run.tags.get("correlation_id", "") for run in runs if run.tags[RUN_KEY_TAG].startswith(f"{queue}:"))


def bad_messages(node: Node) -> dict[str, tuple[bytes, str]]:
    """Correlation id → (body, text its info-error's reason must hold)."""
    dataset_id = node.dataset_id("bad")
    return {
        "not-json": (b"{not json", "the message is not JSON"),
        "not-utf8": (b'{"dataset_id": "\xff\xfe"}', "not valid UTF-8"),
        "one-mib": (b"[" + b" " * MIB, "the message is not JSON"),
        "deep": (b"[" * 100_000, "maximum recursion depth exceeded"),
        "wrong-types": (
            json.dumps({"type": "mapping", "dataset_id": 17, "accession_ids": "SYNC-F1"}).encode(),
            "accession_ids: 'SYNC-F1' is not of type 'array'; dataset_id: 17 is not of type 'string'",
        ),
        "release": (
            json.dumps({"type": "release", "dataset_id": dataset_id}).encode(),
            "type: 'mapping' was expected",
        ),
        "whitespace-dataset": (
            json.dumps(mapping(f"{dataset_id} x", "SYNC-F1")).encode(),
            f"dataset_id: '{dataset_id} x' does not match",
        ),
        "whitespace-file": (
            json.dumps(mapping(dataset_id, "SYNC-F1", "SYNC-F2\n")).encode(),
            "accession_ids/1: 'SYNC-F2\\n' does not match",
        ),
    }


def test_bad_messages_get_one_info_error_each_and_the_next_good_one_a_run(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        bad = bad_messages(sensor_node)
        for correlation_id, (message, _) in bad.items():
            names.publish(message, correlation_id=correlation_id)
        good_dataset = sensor_node.dataset_id("good")
        names.publish(mapping(good_dataset, "SYNC-F1", "SYNC-F2"), correlation_id="good")

        result = evaluate_tick(instance, None)
        store_runs(instance, result)

        assert correlation_ids_of_runs(instance, names.mapping_queue) == ["good"]
        (request,) = result.run_requests
        assert request.run_key == f"{names.mapping_queue}:0:{len(bad)}"
        assert request.tags == {"dataset_id": good_dataset, "correlation_id": "good"}
        assert json.loads(result.cursor)["offset"] == len(bad)
        errors = names.error_messages()
        assert sorted(properties.correlation_id for _, properties in errors) == sorted(bad)
        for published, properties in errors:
            jsonschema.validate(published, INFO_ERROR_SCHEMA)
            message, cause = bad[properties.correlation_id]
            assert published["error"] == "Message validation failed in sync service"
            assert cause in published["reason"] and "\n" not in published["reason"]
            assert published["original-message"] == message.decode("utf-8", errors="replace")

        names.publish(mapping(good_dataset, "SYNC-F3"), correlation_id="after")
        later = evaluate_tick(instance, result.cursor)
        store_runs(instance, later)

        assert [request.tags["correlation_id"] for request in later.run_requests] == ["after"]
        assert correlation_ids_of_runs(instance, names.mapping_queue) == ["after", "good"]
        assert names.error_messages() == []


def test_an_id_with_a_lone_surrogate_gets_an_info_error_not_a_run(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        dataset_id = sensor_node.dataset_id("surrogate")
        names.publish(
            b'{"type":"mapping","dataset_id":"%s-\\ud800","accession_ids":["SYNC-F1"]}' % dataset_id.encode(),
            correlation_id="surrogate",
        )

        result = evaluate_tick(instance, None)

        store_runs(instance, result)
        assert [properties.correlation_id for _, properties in names.error_messages()] == ["surrogate"]
        assert result.run_requests == [] and correlation_ids_of_runs(instance, names.mapping_queue) == []
