"""Stream and queue shapes the sensor must handle, beyond `rabbitmq.topology`: queues declared with
arguments of a test's choosing (quorum queues, streams with small segments and retention), a stream
deleted and declared again, its offsets as the broker numbers them, and a sensor's run request
executed in this process as the daemon's run would be."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pika
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.rabbitmq import Topology
from bpsync_dagster_tests.support.sync_job import partition_tags, sync_job

STREAM = {"x-queue-type": "stream"}
QUORUM = {"x-queue-type": "quorum"}


def declare_mapping_queue(names: Topology, arguments: dict[str, object]) -> None:
    with names.channel() as channel:
        channel.queue_declare(names.mapping_queue, durable=True, arguments=arguments)
        channel.queue_bind(names.mapping_queue, names.exchange, "mappings")


@contextmanager
def topology_with(prefix: str, name: str, arguments: dict[str, object]) -> Iterator[Topology]:
    """A test's topology whose mapping queue `<prefix>-mapping_<name>` is declared with `arguments`."""
    names = Topology(f"{prefix}-sda", f"{prefix}-mapping_{name}", f"{prefix}-errors")
    with names.channel() as channel:
        channel.exchange_declare(names.exchange, "topic", durable=True)
        channel.queue_declare(names.error_queue, durable=True)
        channel.queue_bind(names.error_queue, names.exchange, "error")
    declare_mapping_queue(names, arguments)
    try:
        yield names
    finally:
        names.delete()


def recreate_stream(names: Topology, arguments: dict[str, object] = STREAM) -> None:
    """Delete the mapping stream and declare it again under the same name: empty, offsets from 0."""
    with names.channel() as channel:
        channel.queue_delete(names.mapping_queue)
    declare_mapping_queue(names, arguments)


def stream_offsets(names: Topology, idle_seconds: float = 1.0) -> list[int]:
    """Every offset the stream delivers from its start (segment boundaries leave holes)."""
    offsets: list[int] = []
    with names.channel() as channel:
        channel.basic_qos(prefetch_count=500)
        arguments = {"x-stream-offset": "first"}
        for method, properties, _ in channel.consume(
            names.mapping_queue, arguments=arguments, inactivity_timeout=idle_seconds
        ):
            if method is None:
                break
            offsets.append(int(properties.headers["x-stream-offset"]))
            channel.basic_ack(method.delivery_tag)
    return offsets


def publish_padded(names: Topology, message: dict, pad_bytes: int) -> str:
    """Publish `message` with an extra property of `pad_bytes` characters (the schema allows extras)."""
    return names.publish(json.dumps({**message, "padding": "x" * pad_bytes}).encode(), correlation_id=str(uuid.uuid4()))


def execute_request(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.DagsterRun:
    """Run a sensor's request to the end in this process, tagged as the daemon tags the sensor's runs."""
    tags = {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: MAPPING_SENSOR_NAME}
    partition_tags(instance, request.partition_key)
    result = sync_job().execute_in_process(
        run_config=request.run_config,
        tags=tags,
        instance=instance,
        raise_on_error=False,
        partition_key=request.partition_key,
    )
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def connection_parameters(port: int) -> pika.ConnectionParameters:
    """The shared broker's guest login, on `port` (a proxy's)."""
    return pika.ConnectionParameters("127.0.0.1", port, credentials=pika.PlainCredentials("guest", "guest"))
