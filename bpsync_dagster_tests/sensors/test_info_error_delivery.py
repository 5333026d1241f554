"""An info-error the broker does not take (here: no queue bound to the error routing key) neither
vanishes nor holds up the messages after it: the sensor reads on, and a later tick publishes it,
once (real RabbitMQ, real Dagster instance, ticks in the test process)."""

import json

import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor, evaluate_tick, mapping, store_runs


@pytest.mark.parametrize("kind", ["stream", "classic"])
def test_an_info_error_the_broker_returns_is_published_once_on_a_later_tick(
    sensor_node: Node, monkeypatch, kind: str
) -> None:
    with topology(sensor_node.prefix, kind) as names:
        instance = configure_sensor(sensor_node, monkeypatch, names, SYNC_SENSOR_STREAMSTART="first")
        with names.channel() as channel:
            channel.queue_unbind(names.error_queue, names.exchange, "error")
        names.publish(b"{not json", correlation_id="bad")
        names.publish(mapping(sensor_node.dataset_id("good"), "SYNC-F1"), correlation_id="good")

        returned = evaluate_tick(instance, None)

        (good_request,) = returned.run_requests
        assert good_request.tags["correlation_id"] == "good"
        store_runs(instance, returned)
        if kind == "stream":
            assert json.loads(returned.cursor)["offset"] == 1
        assert names.error_messages() == []

        with names.channel() as channel:
            channel.queue_bind(names.error_queue, names.exchange, "error")
        published = evaluate_tick(instance, returned.cursor)

        assert published.run_requests == []
        ((body, properties),) = names.error_messages()
        assert properties.correlation_id == "bad"
        assert body["reason"].startswith("the message is not JSON") and body["original-message"] == "{not json"

        # Read again from the start, as after a crash before the daemon stored the cursor: the
        # info-error already published is not published again.
        again = evaluate_tick(instance, None)
        later = evaluate_tick(instance, published.cursor)

        assert names.error_messages() == []
        assert later.run_requests == []
        if kind == "stream":
            assert [request.run_key for request in again.run_requests] == [good_request.run_key]
        else:
            assert again.run_requests == [] and names.ready_count() == 0
