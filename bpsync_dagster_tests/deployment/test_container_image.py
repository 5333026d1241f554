"""The project's image, built with podman or docker (scripts/build-image), runs `bpsync check` and a
sync as its non-root user against this host's PostgreSQL, RabbitMQ, S3 server and remote API over
the host network; the synced objects decrypt with the receiver's key.

`pytest -m container` selects these tests; they are skipped, saying why, where no engine can build.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import yaml
from dagster import DagsterRunStatus, RunsFilter

from bpsync_dagster_tests.support import rabbitmq
from bpsync_dagster_tests.support.container_image import ContainerImage, built_image
from bpsync_dagster_tests.support.environment import (
    NODE_PASSPHRASE,
    REMOTE_PASSWORD,
    SDA_DB_PASSWORD,
    Node,
    assert_no_secret,
)

pytestmark = pytest.mark.container

MIB = 1024 * 1024
# Where the configuration and keys are mounted in the container, read-only.
MOUNT = "/etc/bpsync"


@pytest.fixture(scope="session")
def image() -> ContainerImage:
    return built_image()


@pytest.fixture
def mapping_queue(make_node) -> Iterator[str]:
    node: Node = make_node()
    name = f"{node.prefix}-container-mappings"
    connection = pika.BlockingConnection(rabbitmq.SHARED_BROKER)
    connection.channel().queue_declare(name)
    yield name
    connection.channel().queue_delete(name)
    connection.close()


def container_configuration(node: Node, queue: str, directory: Path) -> dict[str, str]:
    """Write the node's configuration and keys to `directory` as a deployment mounts them (secrets
    left out, readable by the image's user); return the environment that completes them."""
    tree = node.config()
    tree["c4gh"] = {"filePath": f"{MOUNT}/node.sec.pem", "syncPubKeyPath": f"{MOUNT}/receiver.pub.pem"}
    del tree["broker"]["password"], tree["db"]["password"]
    tree["broker"]["queue"] = queue
    tree["storage"]["archive"] = {"s3": tree["storage"]["archive"]["s3"]}
    directory.mkdir(mode=0o755)
    (directory / "config.yaml").write_text(yaml.safe_dump(tree))
    (directory / "node.sec.pem").write_bytes(node.node_keys.private_key_path.read_bytes())
    (directory / "receiver.pub.pem").write_bytes(node.receiver_keys.public_key_path.read_bytes())
    for path in directory.iterdir():
        path.chmod(0o644)
    return {
        **node.dagster_env,
        "CONFIG_FILE": f"{MOUNT}/config.yaml",
        "C4GH_PASSPHRASE": NODE_PASSPHRASE,
        "BROKER_PASSWORD": rabbitmq.SERVICE_PASSWORD,
        "DB_PASSWORD": SDA_DB_PASSWORD,
        "SYNC_REMOTE_PASSWORD": REMOTE_PASSWORD,
    }


def test_the_image_checks_its_connections_and_syncs_a_dataset(
    image: ContainerImage, make_node, mapping_queue: str, tmp_path: Path
) -> None:
    node: Node = make_node("s3", "s3")
    dataset_id = node.dataset_id("container")
    files = node.add_dataset(
        dataset_id,
        [("empty.c4gh", b""), ("notes.txt.c4gh", b"a small file\n" * 10), ("data.bin.c4gh", os.urandom(3 * MIB + 7))],
    )
    environment = container_configuration(node, mapping_queue, tmp_path / "container")
    mounts = {tmp_path / "container": MOUNT}
    assert image.user() == "bpsync"

    check = image.run("bpsync", "check", environment=environment, mounts=mounts)

    assert_no_secret(check.stdout + check.stderr, "`bpsync check` in the container")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == f"config: {MOUNT}/config.yaml and the environment: ok (sync.centerPrefix SYNC)"
    for subject in ("crypt4gh node", "crypt4gh receiver", "database", "broker", "archive s3", "sync s3", "remote API"):
        assert any(line.startswith(subject) and ": ok" in line for line in lines), (subject, lines)

    sync = image.run("bpsync", *node.sync_arguments(dataset_id), environment=environment, mounts=mounts)

    assert_no_secret(sync.stdout + sync.stderr, "`bpsync sync` in the container")
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert f"dataset {dataset_id} synced: 3 files copied" in sync.stdout
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert [manifest["dataset_id"] for manifest in node.remote.received] == [dataset_id]
    runs = node.instance().get_runs(RunsFilter(tags={"dataset_id": dataset_id}))
    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]
