from collections.abc import Iterator

import pytest

from bpsync_dagster.configuration import service_settings
from bpsync_dagster_tests.support.environment import Node


@pytest.fixture
def sensor_node(make_node) -> Iterator[Node]:
    """A node whose configuration a test puts in this process's environment; forgotten afterwards."""
    node: Node = make_node()
    yield node
    service_settings.cache_clear()
