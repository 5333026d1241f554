"""`pytest -m unit`: the tests that need no service (no PostgreSQL, RabbitMQ, S3, remote API or
Dagster instance), which run in seconds.

A test is a unit test when its module is listed in `UNIT_TEST_MODULES` and it requests none of
`SERVICE_FIXTURES`, or when it is marked `unit` by hand. While a unit test runs, a tripwire fails it
if it opens a network connection or a PostgreSQL connection anyway, so a test that reaches a service
without a fixture is caught in every run, not only when the services are down.
"""

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg2
import pytest

UNIT_MARKER = "unit"

# Test modules of pure logic (paths under bpsync_dagster_tests/). Their tests that request no
# service fixture are unit tests.
UNIT_TEST_MODULES = frozenset(
    {
        "broker/test_connection.py",
        "broker/test_messages.py",
        "c4gh/test_header.py",
        "c4gh/test_keys.py",
        "cli/test_live_line.py",
        "cli/test_dagster_home.py",
        "configuration/test_bad_configuration.py",
        "configuration/test_cron.py",
        "configuration/test_every_problem.py",
        "configuration/test_loader.py",
        "configuration/test_logs.py",
        "configuration/test_schemas.py",
        "configuration/test_sizes.py",
        "configuration/test_spellings.py",
        "deployment/test_deploy_files.py",
        "deployment/test_monitoring_files.py",
        "deployment/test_ui_binding.py",
        "jobs/test_batching.py",
        "jobs/test_copy_metadata.py",
        "jobs/test_executors.py",
        "jobs/test_progress.py",
        "jobs/test_retry_policies.py",
        "jobs/test_run_queue_limit.py",
        "metrics/test_values.py",
        "remote_api/test_manifest.py",
        "remote_api/test_manifest_properties.py",
        "remote_api/test_url.py",
        "sda_database/test_records.py",
        "storage/test_bandwidth_limit.py",
        "storage/test_directory_fsync.py",
        "storage/test_posix_copy_in_kernel.py",
        "storage/test_read_ahead.py",
        "test_dataset_ids.py",
        "test_errors.py",
        "test_inventory.py",
        "test_public_api.py",
        "test_readme_messages.py",
        "test_resources.py",
        "runs/test_liveness.py",
    }
)

# Fixtures that start or reach a service: the session's (conftest.py) and those of the modules above.
SERVICE_FIXTURES = frozenset(
    {
        "broker_service_user",
        "dagster_instance_env",
        "make_isolated_node",
        "make_node",
        "moto_s3",
        "radosgw",
        "remote_api",
        "s3_server",
        "scratch_database",
        "sda_dsn",
    }
)


def services_requested(item: pytest.Item) -> list[str]:
    return sorted(SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def mark_unit_tests(items: list[pytest.Item], tests_root: str) -> None:
    """Mark the unit tests of the listed modules; refuse a test marked `unit` that asks for a service."""
    for item in items:
        module = item.path.relative_to(tests_root).as_posix()
        if module in UNIT_TEST_MODULES and not services_requested(item):
            item.add_marker(UNIT_MARKER)
    misplaced = [
        f"{item.nodeid} uses {', '.join(services_requested(item))}"
        for item in items
        if item.get_closest_marker(UNIT_MARKER) and services_requested(item)
    ]
    if misplaced:
        raise pytest.UsageError("tests marked unit ask for services:\n  " + "\n  ".join(misplaced))


class _Tripwire:
    """Records (and refuses) network and PostgreSQL connections while armed, from any thread."""

    def __init__(self) -> None:
        self.armed = False
        self.reached: list[str] = []
        self._lock = threading.Lock()
        sys.addaudithook(self._audit)

    def trip(self, what: str) -> None:
        with self._lock:
            self.reached.append(what)
        raise ConnectionRefusedError(f"a unit test may not connect to {what}")

    def _audit(self, event: str, arguments: tuple[Any, ...]) -> None:
        if not self.armed or event != "socket.connect":
            return
        connecting, address = arguments
        if connecting.family in (socket.AF_INET, socket.AF_INET6):
            host, port = address[:2]
            self.trip(f"{host}:{port}")


@cache
def _tripwire() -> _Tripwire:
    """Made at the first unit test: other sessions run without the audit hook."""
    return _Tripwire()


@contextmanager
def no_service_reached(nodeid: str) -> Iterator[None]:
    """Run the body with network and PostgreSQL connections refused; fail if one was tried."""
    tripwire = _tripwire()
    original_connect: Callable[..., Any] = psycopg2.connect

    def refused_connect(*_: object, **__: object) -> None:
        tripwire.trip("PostgreSQL")

    tripwire.reached.clear()
    tripwire.armed = True
    psycopg2.connect = refused_connect
    try:
        yield
    finally:
        tripwire.armed = False
        psycopg2.connect = original_connect
    if tripwire.reached:
        pytest.fail(f"{nodeid} is a unit test but connected to {', '.join(tripwire.reached)}", pytrace=False)
