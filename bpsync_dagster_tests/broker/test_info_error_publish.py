"""Info-errors are published with publisher confirms and `mandatory` (real RabbitMQ): a broker that
does not take one (no queue bound to the error routing key, no such exchange) is an error the caller
sees, never a silent drop."""

import uuid
from collections.abc import Iterator

import pytest

from bpsync_dagster.broker.client import BrokerSession, InfoErrorNotPublished
from bpsync_dagster.configuration import BrokerSettings
from bpsync_dagster_tests.support.rabbitmq import SERVICE_PASSWORD, SERVICE_USER, Topology, topology


@pytest.fixture
def names(broker_service_user: None) -> Iterator[Topology]:
    with topology(f"t{uuid.uuid4().hex[:8]}", "classic") as declared:
        yield declared


def settings(names: Topology, exchange: str | None = None) -> BrokerSettings:
    return BrokerSettings(
        host="127.0.0.1",
        port=5672,
        user=SERVICE_USER,
        password=SERVICE_PASSWORD,
        queue=names.mapping_queue,
        exchange=names.exchange if exchange is None else exchange,
    )


def test_a_routed_info_error_arrives_once_with_the_raw_correlation_id(names: Topology) -> None:
    with BrokerSession(settings(names)) as session:
        session.publish_error(b'{"reason": "first"}', "corr-1")
        session.publish_error(b'{"reason": "second"}', b"\xff\xfe-not-utf8")

    (first, first_properties), (second, second_properties) = names.error_messages()
    assert (first, first_properties.correlation_id) == ({"reason": "first"}, "corr-1")
    assert (second, second_properties.correlation_id) == ({"reason": "second"}, b"\xff\xfe-not-utf8")
    assert first_properties.delivery_mode == 2 and first_properties.content_type == "application/json"


def test_an_info_error_no_queue_takes_is_an_error_not_a_silent_drop(names: Topology) -> None:
    with names.channel() as channel:
        channel.queue_unbind(names.error_queue, names.exchange, "error")

    with BrokerSession(settings(names)) as session:
        with pytest.raises(InfoErrorNotPublished, match="no queue is bound to routing key 'error'"):
            session.publish_error(b"{}", "corr-unroutable")
        with names.channel() as channel:
            channel.queue_bind(names.error_queue, names.exchange, "error")
        session.publish_error(b'{"reason": "after"}', "corr-after")

    assert [properties.correlation_id for _, properties in names.error_messages()] == ["corr-after"]


def test_an_info_error_to_a_missing_exchange_is_an_error(names: Topology) -> None:
    missing = f"{names.exchange[:-4]}-gone-sda"

    with BrokerSession(settings(names, exchange=missing)) as session:
        with pytest.raises(InfoErrorNotPublished, match=f"NOT_FOUND - no exchange '{missing}'"):
            session.publish_error(b"{}", "corr-missing")
