from collections.abc import Iterator

import pytest

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster.sensors.info_errors import outbox_key
from bpsync_dagster_tests.support.environment import Node


@pytest.fixture
def sensor_node(make_node) -> Iterator[Node]:
    """A node whose configuration a test puts in this process's environment; forgotten afterwards,
    with any info-error the test left waiting in the shared Dagster instance."""
    node: Node = make_node()
    yield node
    node.instance().run_storage.set_cursor_values({outbox_key(MAPPING_SENSOR_NAME): ""})
