"""RabbitMQ: connection settings and checks."""

from bpsync_dagster.broker.connection import (
    check_queue,
    connection_parameters,
    vhost_name,
)

__all__ = ["check_queue", "connection_parameters", "vhost_name"]
