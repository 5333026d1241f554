"""No password, passphrase or secret key is ever written anywhere, even with LOG_LEVEL=debug.

One node, on a Dagster instance of its own, does everything an operator would: a successful
`bpsync sync`, one the remote refuses (HTTP 401, wrong password), one with a wrong key passphrase,
`bpsync check`, and a sync that the sensor launches under a real `dagster-daemon`. Then every
trace they leave is searched for every secret, in plain text and in the encodings a leak would
take (hex, base64, the Basic auth header): the commands' stdout and stderr, the daemon's log, every
file under DAGSTER_HOME (compute logs included), each run's config, tags and event log, and every
row of every table of the instance's database.
"""

import base64
import json
import re
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.scheduler.instigation import InstigatorType
from dagster._serdes import serialize_value
from psycopg2 import sql

from bpsync_dagster.sensors import MAPPING_SENSOR_NAME
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import (
    REMOTE_PASSWORD,
    REMOTE_USER,
    SECRETS,
    Node,
)
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.s3_server import S3_SERVERS
from bpsync_dagster_tests.support.sda_database import SERVER_DSN

WRONG_REMOTE_PASSWORD = "wrong-remote-password-5e1"
WRONG_PASSPHRASE = "wrong-passphrase-0c7"


def secret_forms(node: Node) -> dict[str, bytes]:
    """Each secret the node is configured with, by name, in every form worth searching for."""
    forms: dict[str, bytes] = {}
    for number, secret in enumerate((*SECRETS, WRONG_REMOTE_PASSWORD, WRONG_PASSPHRASE)):
        forms[f"secret #{number}"] = secret.encode()
        forms[f"secret #{number} in base64"] = base64.b64encode(secret.encode()).rstrip(b"=")
    for user, password in ((REMOTE_USER, REMOTE_PASSWORD), (REMOTE_USER, WRONG_REMOTE_PASSWORD)):
        forms[f"Basic auth of {password[:6]}…"] = base64.b64encode(f"{user}:{password}".encode())
    secret_key = node.node_keys.secret_key
    forms["node secret key"] = secret_key
    forms["node secret key in hex"] = secret_key.hex().encode()
    forms["node secret key in base64"] = base64.b64encode(secret_key).rstrip(b"=")
    pem_body = b"".join(node.node_keys.private_key_path.read_bytes().splitlines()[1:-1])
    forms["node private key file"] = pem_body[-40:]
    return forms


def dagster_database_rows(database: str) -> Iterator[tuple[str, bytes]]:
    """Every row of every table of the instance's database, as text."""
    with closing(psycopg2.connect(SERVER_DSN, dbname=database)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        for (table,) in cursor.fetchall():
            cursor.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table)))
            for (row,) in cursor.fetchall():
                yield f"table {table}", row.encode()


def run_records(instance: dg.DagsterInstance) -> Iterator[tuple[str, bytes]]:
    """Each run's config, tags and event log, as Dagster returns them."""
    for run in instance.get_runs():
        yield f"run {run.run_id} config", json.dumps(run.run_config, default=str).encode()
        yield f"run {run.run_id} tags", json.dumps(run.tags).encode()
        for entry in instance.all_logs(run.run_id):
            yield f"run {run.run_id} event log", serialize_value(entry).encode()


def files_under(directory: Path) -> Iterator[tuple[str, bytes]]:
    for path in directory.rglob("*"):
        if path.is_file():
            yield str(path), path.read_bytes()


def sensor_reads(instance: dg.DagsterInstance, queue: str) -> bool:
    """Whether the mapping sensor has pinned its cursor on `queue` (its first tick)."""
    state = next(
        (
            state
            for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.name == MAPPING_SENSOR_NAME
        ),
        None,
    )
    cursor = state.instigator_data.cursor if state and state.instigator_data else None
    return bool(cursor) and json.loads(cursor).get("queue") == queue


def leaks(sources: list[tuple[str, bytes]], forms: dict[str, bytes]) -> list[str]:
    return [f"{name} in {where}" for where, content in sources for name, form in forms.items() if form in content]


def test_no_secret_is_written_anywhere_with_debug_logging(make_isolated_node, tmp_path: Path) -> None:
    node: Node = make_isolated_node("posix", "s3")
    sources: list[tuple[str, bytes]] = []

    def run_bpsync(name: str, *arguments: str) -> int:
        result = node.bpsync(*arguments)
        sources.extend([(f"{name} stdout", result.stdout.encode()), (f"{name} stderr", result.stderr.encode())])
        return result.returncode

    with topology(node.prefix, "stream") as names:
        node.extra_env = {"LOG_LEVEL": "debug", "BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        synced = node.dataset_id("synced")
        node.add_dataset(synced, [("s.c4gh", b"synced " * 20)])
        assert run_bpsync("successful sync", *node.sync_arguments(synced)) == 0

        refused = node.dataset_id("refused")
        node.add_dataset(refused, [("r.c4gh", b"refused " * 20)])
        node.extra_env["SYNC_REMOTE_PASSWORD"] = WRONG_REMOTE_PASSWORD
        assert run_bpsync("sync refused by the remote", *node.sync_arguments(refused)) == 1
        del node.extra_env["SYNC_REMOTE_PASSWORD"]

        node.extra_env["C4GH_PASSPHRASE"] = WRONG_PASSPHRASE
        assert run_bpsync("sync with a wrong passphrase", *node.sync_arguments(refused)) == 2
        del node.extra_env["C4GH_PASSPHRASE"]

        assert run_bpsync("check", "check") == 0

        by_sensor = node.dataset_id("sensor")
        files = node.add_dataset(by_sensor, [("d.c4gh", b"daemon " * 20)])
        instance = node.instance()
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            wait_until(lambda: sensor_reads(instance, names.mapping_queue), 90, "the sensor's first tick")
            names.publish({"type": "mapping", "dataset_id": by_sensor, "accession_ids": [files[0].accession_id]})
            wait_until(lambda: by_sensor in {body["dataset_id"] for body in node.remote.received}, 120, "the run")
            wait_until(lambda: all(run.is_finished for run in instance.get_runs()), 60, "every run to finish")
        sources.append(("daemon log", daemon.log().encode()))

    runs = instance.get_runs()
    assert {run.tags["dataset_id"] for run in runs} == {synced, refused, by_sensor}
    assert [run.status for run in runs if run.tags["dataset_id"] == refused] == [dg.DagsterRunStatus.FAILURE]
    sources += [*files_under(node.dagster_home), *run_records(instance)]
    sources += dagster_database_rows(node.dagster_env["DAGSTER_POSTGRES_DB"])
    everything = b"\n".join(content for _, content in sources)
    assert b"HTTP 401" in everything and b"wrong passphrase" in everything
    assert b": in place at " in everything, "the debug lines of copy_files were not captured"
    assert leaks(sources, secret_forms(node)) == []


def configured_secrets(value: object, key: str = "") -> Iterator[str]:
    """The values of every password, passphrase or secret key in a configuration tree."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from configured_secrets(item, str(name))
    elif isinstance(value, list):
        for item in value:
            yield from configured_secrets(item, key)
    elif isinstance(value, str) and SECRET_NAME.search(key):
        yield value


SECRET_NAME = re.compile(r"password|passphrase|secret", re.IGNORECASE)


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_the_secrets_searched_for_are_exactly_those_the_test_nodes_configure(make_node) -> None:
    """`SECRETS` (what every leak check searches for) misses none of the node's secrets: its config
    file, its environment (Dagster's database, the remote's password) and the broker's service user."""
    node: Node = make_node("s3", "s3")
    environment = node.environment()
    # What the node adds to the inherited environment (a session fixture may have put the same
    # values into os.environ already, so comparing with it would hide them).
    set_by_the_node = {name: environment[name] for name in [*node.dagster_env, "SYNC_REMOTE_PASSWORD", *node.extra_env]}

    found = set(configured_secrets(node.config())) | set(configured_secrets(set_by_the_node))

    assert found == set(SECRETS)
