"""The real `bpsync metrics` as a subprocess of a test, scraped with a real HTTP client."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bpsync_dagster.metrics.values import Snapshot, metric_families
from bpsync_dagster_tests.support.environment import Node, assert_no_secret
from bpsync_dagster_tests.support.processes import read_line

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sample's key in `Samples`."""
    return name, tuple(sorted(labels.items()))


def parse(text: str) -> Samples:
    """The samples of a Prometheus text exposition."""
    return {
        key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return metric_families(self._snapshot)


def exposition(snapshot: Snapshot) -> Samples:
    """The samples a scrape of `snapshot` would show, exposed and parsed as Prometheus does."""
    registry = CollectorRegistry()
    registry.register(_SnapshotCollector(snapshot))
    return parse(generate_latest(registry).decode())


class MetricsExporter:
    """`bpsync metrics --port 0` with the node's configuration; its URL from the line it prints."""

    def __init__(self, node: Node, log_path: Path) -> None:
        self._node = node
        self._log_path = log_path
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.scrape_seconds: list[float] = []

    def __enter__(self) -> "MetricsExporter":
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bpsync_dagster.cli", "metrics", "--port", "0"],
            cwd=self._node.root,
            env=self._node.environment(),
            stdout=subprocess.PIPE,
            stderr=self._log_path.open("w"),
            text=True,
        )
        assert self._process.stdout is not None
        line = read_line(self._process.stdout, 60)
        assert line.startswith("bpsync metrics: serving http://127.0.0.1:"), line + self.log()
        self.url = line.split("serving ", 1)[1].strip()
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=30)
        assert_no_secret(self.log(), "the log of bpsync metrics")

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def scrape_text(self) -> str:
        started = time.monotonic()
        response = requests.get(self.url, timeout=30)
        self.scrape_seconds.append(time.monotonic() - started)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.text

    def scrape(self) -> Samples:
        return parse(self.scrape_text())
