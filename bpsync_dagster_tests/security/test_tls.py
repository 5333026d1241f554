"""TLS for real: the broker, the SDA database and the remote API, each with a CA the test makes.

Every connection is made by the service's own code (`bpsync check`, `bpsync sync`, `BrokerSession`,
`RemoteSyncApi`) against private servers that require TLS: a RabbitMQ node whose TLS listener
demands a client certificate, a PostgreSQL cluster whose pg_hba admits the SDA reader only over
`hostssl ... cert`, and the stand-in remote API behind HTTPS. A server signed by another CA, or a
missing client certificate, must be refused with one clear line and no traceback.
"""

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from bpsync_dagster.broker.client import BrokerError, BrokerSession
from bpsync_dagster.configuration import RemoteApiSettings, load_settings
from bpsync_dagster.remote_api import RemoteApiError, RemoteSyncApi, TransientRemoteApiError
from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.environment import (
    FILE_SYNC_SCHEMA,
    REMOTE_PASSWORD,
    REMOTE_USER,
    SDA_DB_USER,
    SUBMITTER,
    Node,
)
from bpsync_dagster_tests.support.https_remote_api import HttpsStandInRemoteApi
from bpsync_dagster_tests.support.private_postgres import PrivatePostgres
from bpsync_dagster_tests.support.rabbitmq import Topology, topology
from bpsync_dagster_tests.support.tls import TlsFiles, make_tls_files
from bpsync_dagster_tests.support.tls_rabbitmq import TlsRabbitMQ

TLS_SDA_DATABASE = "sda"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One CA for every server of this module; the client certificate's CN is the SDA reader role."""
    return make_tls_files(tmp_path_factory.mktemp("tls"), client_common_name=SDA_DB_USER)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[TlsRabbitMQ]:
    with TlsRabbitMQ(tmp_path_factory.mktemp("tls-rabbitmq"), tls_files) as broker:
        yield broker


@pytest.fixture(scope="module")
def tls_broker_topology(tls_broker: TlsRabbitMQ) -> Iterator[Topology]:
    """A mapping stream and an error queue on the TLS broker, declared over its plain listener."""
    with topology("tls", "stream", tls_broker.connection_parameters()) as names:
        yield names


@pytest.fixture(scope="module")
def tls_postgres(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[PrivatePostgres]:
    """A cluster with ssl=on where the SDA reader may log in only over TLS with a client certificate."""
    cluster = PrivatePostgres(
        tmp_path_factory.mktemp("tls-postgres"),
        settings={
            "ssl": "on",
            "ssl_cert_file": "'server.crt'",
            "ssl_key_file": "'server.key'",
            "ssl_ca_file": "'ca.crt'",
            "ssl_min_protocol_version": "'TLSv1.2'",
        },
        hba_lines=[
            f"hostssl all {SDA_DB_USER} 127.0.0.1/32 cert",
            "host all postgres 127.0.0.1/32 trust",
        ],
    )
    cluster.install_file(tls_files.server.certificate, "server.crt")
    cluster.install_file(tls_files.server.key, "server.key")
    cluster.install_file(tls_files.ca_certificate, "ca.crt")
    with cluster:
        cluster.execute(f"CREATE DATABASE {TLS_SDA_DATABASE}")
        cluster.execute(sda_database.SDA_DDL, database=TLS_SDA_DATABASE)
        cluster.execute(
            "INSERT INTO sda.dbschema_version (version, description) VALUES (23, 'tls test');"
            + sda_database.sda_sync_login_role(SDA_DB_USER, None)
            + sda_database.sda_sync_grants("sync", "base"),
            database=TLS_SDA_DATABASE,
        )
        yield cluster


@pytest.fixture
def https_remote_api(tls_files: TlsFiles) -> Iterator[HttpsStandInRemoteApi]:
    with HttpsStandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA, tls_files.server) as api:
        yield api


def broker_tls_environment(broker: TlsRabbitMQ, names: Topology, tls_files: TlsFiles) -> dict[str, str]:
    return {
        "BROKER_HOST": "127.0.0.1",
        "BROKER_PORT": str(broker.tls_port),
        "BROKER_QUEUE": names.mapping_queue,
        "BROKER_EXCHANGE": names.exchange,
        "BROKER_SSL": "true",
        "BROKER_CACERT": str(tls_files.ca_certificate),
        "BROKER_VERIFYPEER": "true",
        "BROKER_CLIENTCERT": str(tls_files.client.certificate),
        "BROKER_CLIENTKEY": str(tls_files.client.key),
    }


def database_tls_environment(cluster: PrivatePostgres, tls_files: TlsFiles) -> dict[str, str]:
    return {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(cluster.port),
        "DB_DATABASE": TLS_SDA_DATABASE,
        "DB_SSLMODE": "verify-full",
        "DB_CACERT": str(tls_files.ca_certificate),
        "DB_CLIENTCERT": str(tls_files.client.certificate),
        "DB_CLIENTKEY": str(tls_files.client.key),
    }


def check_line(stdout: str, subject: str) -> str:
    """The one line `bpsync check` prints for `subject`."""
    (line,) = [line for line in stdout.splitlines() if line.startswith(subject)]
    return line


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


def manifest_of(dataset_id: str) -> dict[str, object]:
    return {
        "dataset_id": dataset_id,
        "dataset_files": [{"filepath": "a/b.c4gh", "file_id": f"{dataset_id}-F1", "sha256": "0" * 64}],
        "user": SUBMITTER,
    }


# -- broker ---------------------------------------------------------------------------------------


def test_check_reaches_the_broker_over_tls_with_a_client_certificate(
    make_node, tls_broker: TlsRabbitMQ, tls_broker_topology: Topology, tls_files: TlsFiles
) -> None:
    node: Node = make_node()
    node.extra_env = broker_tls_environment(tls_broker, tls_broker_topology, tls_files)

    result = node.bpsync("check")

    assert result.returncode == 0, result.stdout + result.stderr
    line = check_line(result.stdout, "broker")
    assert line == f"broker 127.0.0.1:{tls_broker.tls_port} queue {tls_broker_topology.mapping_queue}: ok"


def test_the_sensors_broker_session_reads_the_stream_and_publishes_errors_over_tls(
    make_node, tls_broker: TlsRabbitMQ, tls_broker_topology: Topology, tls_files: TlsFiles
) -> None:
    node: Node = make_node()
    node.extra_env = broker_tls_environment(tls_broker, tls_broker_topology, tls_files)
    settings = load_settings(node.environment())
    mapping = {"type": "mapping", "dataset_id": node.dataset_id("tls"), "accession_ids": ["A-1"]}
    correlation_id = tls_broker_topology.publish(mapping)

    with BrokerSession(settings.broker) as session:
        deliveries = session.read_stream("first", limit=1000, deadline=time.monotonic() + 10)
        session.publish_error(b'{"error": "over tls"}', correlation_id)

    assert json.loads(deliveries[-1].body) == mapping
    assert deliveries[-1].correlation_id == correlation_id
    errors = tls_broker_topology.error_messages()
    assert [(body, properties.correlation_id) for body, properties in errors] == [
        ({"error": "over tls"}, correlation_id)
    ]


BROKER_REFUSALS: dict[str, tuple[Callable[[TlsFiles], dict[str, str]], str]] = {
    "server certificate of an unknown CA": (
        lambda files: {"BROKER_CACERT": str(files.other_ca_certificate)},
        "certificate verify failed",
    ),
    # Under TLS 1.3 the server checks the client after the handshake: its alert may reach the client,
    # or only the closed connection.
    "no client certificate": (
        lambda files: {"BROKER_VERIFYPEER": "false"},
        r"(?i)certificate required|EOF occurred in violation of protocol",
    ),
    "client certificate of an unknown CA": (
        lambda files: {
            "BROKER_CLIENTCERT": str(files.other_client.certificate),
            "BROKER_CLIENTKEY": str(files.other_client.key),
        },
        r"(?i)alert unknown ca|EOF occurred in violation of protocol",
    ),
}


@pytest.mark.parametrize("case", list(BROKER_REFUSALS))
def test_the_broker_connection_is_refused_in_one_line(
    make_node, tls_broker: TlsRabbitMQ, tls_broker_topology: Topology, tls_files: TlsFiles, case: str
) -> None:
    overrides, reason = BROKER_REFUSALS[case]
    node: Node = make_node()
    node.extra_env = {**broker_tls_environment(tls_broker, tls_broker_topology, tls_files), **overrides(tls_files)}

    result = node.bpsync("check")

    assert result.returncode == 1, result.stdout
    line = check_line(result.stdout, "broker")
    assert f": cannot connect to 127.0.0.1:{tls_broker.tls_port}: " in line, line
    assert re.search(reason, line), line
    assert_no_traceback(result)
    with pytest.raises(BrokerError, match=f"cannot connect to the broker 127.0.0.1:{tls_broker.tls_port}"):
        with BrokerSession(load_settings(node.environment()).broker):
            pass


# -- SDA database ---------------------------------------------------------------------------------


def test_a_sync_reads_the_sda_database_over_verified_tls_with_a_client_certificate(
    make_node, tls_postgres: PrivatePostgres, tls_files: TlsFiles
) -> None:
    node: Node = make_node("posix", "posix")
    node.sda_dsn = tls_postgres.dsn(TLS_SDA_DATABASE)
    node.extra_env = database_tls_environment(tls_postgres, tls_files)
    dataset_id = node.dataset_id("tls-db")
    files = node.add_dataset(dataset_id, [("one.c4gh", b"first file " * 40), ("two.c4gh", b"second file " * 90)])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stdout + result.stderr
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert [body["dataset_id"] for body in node.remote.received] == [dataset_id]


DATABASE_REFUSALS: dict[str, tuple[Callable[[TlsFiles], dict[str, str]], str]] = {
    "server certificate of an unknown CA": (
        lambda files: {"DB_CACERT": str(files.other_ca_certificate)},
        "certificate verify failed",
    ),
    "no client certificate": (
        lambda files: {"DB_SSLMODE": "verify-ca", "DB_CLIENTCERT": "", "DB_CLIENTKEY": ""},
        "connection requires a valid client certificate",
    ),
}


@pytest.mark.parametrize("case", list(DATABASE_REFUSALS))
def test_the_sda_database_connection_is_refused_in_one_line(
    make_node, tls_postgres: PrivatePostgres, tls_files: TlsFiles, case: str
) -> None:
    overrides, reason = DATABASE_REFUSALS[case]
    node: Node = make_node()
    node.extra_env = {**database_tls_environment(tls_postgres, tls_files), **overrides(tls_files)}

    result = node.bpsync("check")

    assert result.returncode == 1, result.stdout
    line = check_line(result.stdout, "database")
    assert f"cannot connect to the SDA database {SDA_DB_USER}@127.0.0.1:{tls_postgres.port}/sda" in line, line
    assert reason in line, line
    assert_no_traceback(result)


# -- remote API -----------------------------------------------------------------------------------


def test_a_sync_posts_its_manifest_over_https_to_a_remote_of_a_custom_ca(
    make_node, https_remote_api: HttpsStandInRemoteApi, tls_files: TlsFiles
) -> None:
    """The CA comes from `SYNC_REMOTE_CACERT`, added to the system roots (and given per request,
    since requests would otherwise prefer a REQUESTS_CA_BUNDLE of the environment)."""
    node: Node = make_node("posix", "posix")
    node.remote = https_remote_api
    node.extra_env = {"SYNC_REMOTE_CACERT": str(tls_files.ca_certificate)}
    dataset_id = node.dataset_id("https")
    files = node.add_dataset(dataset_id, [("h.c4gh", b"over https " * 30)])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stdout + result.stderr
    (manifest,) = https_remote_api.received
    assert manifest["dataset_id"] == dataset_id
    assert [entry["file_id"] for entry in manifest["dataset_files"]] == [files[0].accession_id]


def test_an_untrusted_remote_certificate_fails_at_once_naming_the_certificate(
    https_remote_api: HttpsStandInRemoteApi,
) -> None:
    settings = RemoteApiSettings(https_remote_api.url, None, REMOTE_USER, REMOTE_PASSWORD)
    remote = RemoteSyncApi(settings, connect_timeout_seconds=5, read_timeout_seconds=5)

    with pytest.raises(RemoteApiError) as raised:
        remote.post_manifest(manifest_of("SYNC-untrusted"))

    assert not isinstance(raised.value, TransientRemoteApiError)
    assert "certificate verify failed" in str(raised.value)
    assert https_remote_api.attempts == 0
