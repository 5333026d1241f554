from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.webserver import Webserver


@pytest.fixture
def ui_node(make_isolated_node) -> Node:
    """A POSIX node on a Dagster instance of its own, so its runs are the only ones in the UI."""
    return make_isolated_node("posix", "posix")


@pytest.fixture
def start_webserver(tmp_path: Path) -> Iterator[Callable[[Node], Webserver]]:
    """Start the real `dagster-webserver` on a node's Dagster instance; stopped after the test."""
    started: list[Webserver] = []

    def start(node: Node) -> Webserver:
        webserver = Webserver(node.environment(), tmp_path / f"webserver-{len(started)}.log")
        started.append(webserver)
        webserver.start()
        return webserver

    yield start
    for webserver in started:
        webserver.stop()
