"""Session-wide real services: Postgres databases, S3 servers (moto, Ceph's RADOS Gateway), keys, a
Dagster instance."""

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bpsync_dagster_tests.support import crypt4gh_files, rabbitmq
from bpsync_dagster_tests.support.environment import (
    ARCHIVE_BUCKET,
    DAGSTER_DB,
    FILE_SYNC_SCHEMA,
    NODE_PASSPHRASE,
    REMOTE_PASSWORD,
    REMOTE_USER,
    SDA_DB,
    Node,
    create_dagster_database,
    create_sda_database,
    drop_database,
    make_dagster_home,
)
from bpsync_dagster_tests.support.radosgw import RadosGateway
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi
from bpsync_dagster_tests.support.s3_server import S3Endpoint, S3Server
from bpsync_dagster_tests.support.unit_tests import UNIT_MARKER, mark_unit_tests, no_service_reached

RADOSGW_PACKAGES = "ceph-mon ceph-osd radosgw ceph-common"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_unit_tests(items, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def unit_tests_reach_no_service(request: pytest.FixtureRequest) -> Iterator[None]:
    """A unit test (`pytest -m unit`) that connects to a service fails, naming what it reached."""
    if request.node.get_closest_marker(UNIT_MARKER) is None:
        yield
        return
    with no_service_reached(request.node.nodeid):
        yield


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    server.client().create_bucket(Bucket=ARCHIVE_BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def broker_service_user() -> None:
    rabbitmq.ensure_service_user()


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGateway]:
    """A single-node Ceph cluster with a RADOS Gateway (HTTP and HTTPS), started once per session
    (about 15 s), only if a test asks for it."""
    if shutil.which("radosgw") is None:
        pytest.skip(f"radosgw is not installed (apt-get install -y {RADOSGW_PACKAGES})")
    directory = tmp_path_factory.mktemp("radosgw")
    gateway = RadosGateway(directory, tls=True)
    gateway.start()
    try:
        gateway.client().create_bucket(Bucket=ARCHIVE_BUCKET)
        yield gateway
    finally:
        gateway.stop()
        shutil.rmtree(directory, ignore_errors=True)  # the OSD's objects, saved at its stop


@pytest.fixture
def s3_server(request: pytest.FixtureRequest) -> S3Endpoint:
    """The session's moto server, or, when a test parametrizes this fixture indirectly, `moto`,
    `radosgw` (over HTTP) or `radosgw-https` (the same gateway over HTTPS, with its test CA)."""
    name = getattr(request, "param", "moto")
    if name == "moto":
        return request.getfixturevalue("moto_s3")
    gateway: RadosGateway = request.getfixturevalue("radosgw")
    return {"radosgw": gateway, "radosgw-https": gateway.https()}[name]


@pytest.fixture(scope="session")
def key_pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[crypt4gh_files.KeyPair, crypt4gh_files.KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    node = crypt4gh_files.make_key_pair(directory, "node", NODE_PASSPHRASE)
    receiver = crypt4gh_files.make_key_pair(directory, "receiver", "receiver-passphrase")
    return node, receiver


@pytest.fixture(scope="session")
def sda_dsn() -> Iterator[str]:
    yield create_sda_database()
    drop_database(SDA_DB)


@pytest.fixture(scope="session")
def dagster_instance_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    yield make_dagster_home(tmp_path_factory.mktemp("dagster_home")), create_dagster_database()
    drop_database(DAGSTER_DB)


@pytest.fixture
def remote_api() -> Iterator[StandInRemoteApi]:
    with StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA) as api:
        yield api


@pytest.fixture
def make_node(
    tmp_path: Path,
    s3_server: S3Endpoint,
    key_pairs: tuple[crypt4gh_files.KeyPair, crypt4gh_files.KeyPair],
    sda_dsn: str,
    dagster_instance_env: tuple[Path, dict[str, str]],
    remote_api: StandInRemoteApi,
    broker_service_user: None,
):
    """Build a `Node` with archive and sync storage of the given kinds (`posix` or `s3`)."""

    def make(archive: str = "posix", sync: str = "posix") -> Node:
        home, env = dagster_instance_env
        return Node(
            root=tmp_path,
            archive=archive,
            sync=sync,
            node_keys=key_pairs[0],
            receiver_keys=key_pairs[1],
            sda_dsn=sda_dsn,
            s3=s3_server,
            remote=remote_api,
            dagster_home=home,
            dagster_env=env,
        )

    return make


@pytest.fixture
def make_isolated_node(make_node, tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """Like `make_node`, on a Dagster instance of its own (home and database, dropped afterwards).

    For tests that run the daemon: on the shared instance it would first launch whatever runs other
    tests left queued, and report their failures.
    """
    databases: list[str] = []

    def make(archive: str = "posix", sync: str = "posix", max_concurrent_runs: int | None = None) -> Node:
        name = f"bpsync_test_dagster_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        databases.append(name)
        node: Node = make_node(archive, sync)
        node.dagster_env = create_dagster_database(name)
        node.dagster_home = make_dagster_home(tmp_path / f"dagster_home_{name}", max_concurrent_runs)
        return node

    yield make
    for name in databases:
        drop_database(name)
