"""`bpsync check` and the process-level promises of the package and the CLI."""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import yaml

from bpsync_dagster.c4gh import fingerprint
from bpsync_dagster_tests.configuration.test_spellings import dotted
from bpsync_dagster_tests.support.environment import SECRETS, Node


@pytest.fixture
def mapping_queue(make_node) -> Iterator[str]:
    node: Node = make_node()
    name = f"{node.prefix}-mappings"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    connection.channel().queue_declare(name)
    yield name
    connection.channel().queue_delete(name)
    connection.close()


def test_check_reports_every_connection_ok(make_node, mapping_queue: str) -> None:
    node: Node = make_node("s3", "s3")
    node.extra_env = {"BROKER_QUEUE": mapping_queue}

    result = node.bpsync("check")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {node.config_file} and the environment: ok (sync.centerPrefix SYNC)"
    for subject in (
        "crypt4gh node",
        "crypt4gh receiver",
        "database",
        "broker",
        "archive posix",
        "archive s3",
        "sync s3",
    ):
        assert any(line.startswith(subject) and ": ok" in line for line in lines), (subject, lines)
    assert any(line.startswith("remote API") and ": ok" in line for line in lines), lines
    assert (
        f"crypt4gh node private key {node.node_keys.private_key_path}: ok (read as crypt4gh (scrypt); "
        f"public key fingerprint {fingerprint(node.node_keys.public_key)})"
    ) in lines
    assert (
        f"crypt4gh receiver public key {node.receiver_keys.public_key_path}: ok (read as crypt4gh; "
        f"fingerprint {fingerprint(node.receiver_keys.public_key)})"
    ) in lines


def test_check_reads_the_configuration_as_sda_deploys_it(make_node, mapping_queue: str) -> None:
    """As the SDA Helm chart deploys a service: `CONFIGPATH` names a directory holding `config.yaml`,
    whose keys are dotted (`broker.host: …`), and the database is set with current SDA names."""
    node: Node = make_node("posix", "posix")
    tree = node.config()
    database = tree.pop("db")
    deployed = dotted({name: value for name, value in tree.items() if name != "storage"})
    deployed.update({"broker.queue": mapping_queue, "storage": tree["storage"]})
    directory = node.root / "helm-config"
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(deployed))
    node.extra_env = {
        "CONFIG_FILE": "",
        "CONFIGPATH": str(directory),
        "DATABASE_HOST": database["host"],
        "DATABASE_PORT": str(database["port"]),
        "DATABASE_USER": database["user"],
        "DATABASE_PASSWORD": database["password"],
        "DATABASE_NAME": database["database"],
        "DATABASE_SSL_MODE": database["sslmode"],
    }
    assert "broker.host" in deployed and "c4gh.filePath" in deployed

    result = node.bpsync("check")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {directory / 'config.yaml'} and the environment: ok (sync.centerPrefix SYNC)"
    for subject in ("crypt4gh node", "crypt4gh receiver", "database", "broker", "archive posix", "sync posix"):
        assert any(line.startswith(subject) and ": ok" in line for line in lines), (subject, lines)


def test_check_names_what_is_wrong(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"DB_DATABASE": "absent_sda", "BROKER_QUEUE": f"{node.prefix}-absent", "C4GH_PASSPHRASE": "wrong"}

    result = node.bpsync("check")

    assert result.returncode == 1
    out = result.stdout
    assert f"crypt4gh node private key {node.node_keys.private_key_path}: c4gh.passphrase: wrong passphrase" in out
    assert f"crypt4gh receiver public key {node.receiver_keys.public_key_path}: ok" in out
    assert "cannot connect to the SDA database" in out and '"absent_sda" does not exist' in out
    assert f"queue {node.prefix}-absent: broker.queue '{node.prefix}-absent': NOT_FOUND" in out
    assert "sync posix" in out and ": ok" in out.split("sync posix", 1)[1].splitlines()[0]


def test_check_and_start_up_warn_of_basic_auth_in_clear_text(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"SYNC_REMOTE_HOST": "http://sync-api.invalid:8080"}
    warning = (
        "config: sync.remote.host (env SYNC_REMOTE_HOST) is http: the password of sync.remote.user goes to the "
        "remote in clear text (Basic auth); use https"
    )

    result = node.bpsync("check")

    assert result.stdout.splitlines()[:2] == [
        f"config: {node.config_file} and the environment: ok (sync.centerPrefix SYNC)",
        warning,
    ]
    assert f"WARNING bpsync_dagster.configuration: {warning}" in result.stderr


def test_the_package_imports_without_any_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import bpsync_dagster, bpsync_dagster.definitions, bpsync_dagster.cli.main"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "CONFIG_FILE": str(tmp_path / "absent.yaml")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_code_location_load_names_a_bad_key(make_node) -> None:
    node: Node = make_node()
    environment = {**node.environment(), "SYNC_CENTERPREFIX": "", "CONFIG_FILE": str(node.root / "empty.yaml")}
    (node.root / "empty.yaml").write_text("{}\n")
    load = "from bpsync_dagster.definitions import defs; defs()"
    result = subprocess.run([sys.executable, "-c", load], env=environment, capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(
        rf"config: \d+ problems in {re.escape(str(node.root / 'empty.yaml'))} and the environment:\n", result.stderr
    )
    assert "\n  sync.centerPrefix (env SYNC_CENTERPREFIX) is required\n" in result.stderr


def test_dagster_home_files_hold_no_secret(make_node) -> None:
    node: Node = make_node("posix", "s3")
    dataset_id = node.dataset_id("nosecrets")
    node.add_dataset(dataset_id, [("n.c4gh", b"n" * 100)])
    assert node.sync_mapped(dataset_id).returncode == 0

    for path in node.dagster_home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in content, path
