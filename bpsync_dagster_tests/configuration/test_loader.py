"""`load_settings`: SDA's YAML file plus environment overrides, validated into typed settings."""

import copy
from pathlib import Path

import pytest
import yaml

from bpsync_dagster.configuration import (
    AuditSettings,
    BrokerSettings,
    ConfigError,
    Crypt4ghSettings,
    DatabaseSettings,
    PosixStorage,
    RemoteApiSettings,
    S3Storage,
    Settings,
    StorageSettings,
    load_settings,
)
from bpsync_dagster.configuration.settings import LogSettings, SchemaSettings

SECRETS = (
    "remote-secret-7a1",
    "node-passphrase-3c9",
    "broker-secret-51e",
    "db-secret-0d2",
    "archive-access-9f0",
    "archive-secret-4b6",
    "sync-access-2e8",
    "sync-secret-6c3",
)

VALID_CONFIG: dict[str, object] = {
    "sync": {
        "centerPrefix": "SYNC",
        "remote": {
            "host": "https://remote.example.org",
            "port": 8443,
            "user": "remote-user",
            "password": "remote-secret-7a1",
        },
    },
    "c4gh": {
        "filePath": "/keys/node.sec.pem",
        "passphrase": "node-passphrase-3c9",
        "syncPubKeyPath": "/keys/receiver.pub.pem",
    },
    "broker": {
        "host": "mq.example.org",
        "port": 5671,
        "user": "sync-user",
        "password": "broker-secret-51e",
        "queue": "mapping_stream",
        "vhost": "sda",
        "exchange": "sda",
        "prefetchCount": 4,
        "ssl": True,
        "caCert": "/certs/ca.pem",
        "serverName": "mq",
        "verifyPeer": True,
        "clientCert": "/certs/client.pem",
        "clientKey": "/certs/client.key",
    },
    "db": {
        "host": "db.example.org",
        "port": 5433,
        "user": "sync",
        "password": "db-secret-0d2",
        "database": "lega",
        "sslmode": "verify-full",
        "cacert": "/certs/ca.pem",
        "clientcert": "/certs/db.pem",
        "clientkey": "/certs/db.key",
    },
    "schema": {"type": "isolated"},
    "log": {"level": "debug", "format": "json"},
    "storage": {
        "archive": {
            "s3": [
                {
                    "endpoint": "https://s3.example.org",
                    "access_key": "archive-access-9f0",
                    "secret_key": "archive-secret-4b6",
                    "region": "eu-north-1",
                    "ca_cert": "/certs/ca.pem",
                    "disable_https": False,
                    "chunk_size": "50MB",
                }
            ],
            "posix": [{"path": "/archive"}],
        },
        "sync": {
            "s3": [
                {
                    "endpoint": "http://sync-s3:9000",
                    "access_key": "sync-access-2e8",
                    "secret_key": "sync-secret-6c3",
                    "disable_https": True,
                    "bucket_prefix": "sync",
                    "max_buckets": 3,
                    "max_objects": 100,
                    "max_size": "10GB",
                }
            ]
        },
    },
}

ARCHIVE_S3 = S3Storage(
    endpoint="https://s3.example.org",
    access_key="archive-access-9f0",
    secret_key="archive-secret-4b6",
    region="eu-north-1",
    ca_cert=Path("/certs/ca.pem"),
    disable_https=False,
    chunk_size=50 * 1024 * 1024,
)
SYNC_S3 = S3Storage(
    endpoint="http://sync-s3:9000",
    access_key="sync-access-2e8",
    secret_key="sync-secret-6c3",
    disable_https=True,
    bucket_prefix="sync",
    max_buckets=3,
    max_objects=100,
    max_size=10 * 1024**3,
)

EXPECTED = Settings(
    center_prefix="SYNC",
    remote=RemoteApiSettings(
        host="https://remote.example.org", port=8443, user="remote-user", password="remote-secret-7a1"
    ),
    crypt4gh=Crypt4ghSettings(
        private_key_path=Path("/keys/node.sec.pem"),
        receiver_public_key_path=Path("/keys/receiver.pub.pem"),
        passphrase="node-passphrase-3c9",
    ),
    broker=BrokerSettings(
        host="mq.example.org",
        port=5671,
        user="sync-user",
        password="broker-secret-51e",
        queue="mapping_stream",
        vhost="sda",
        exchange="sda",
        prefetch_count=4,
        ssl=True,
        ca_cert=Path("/certs/ca.pem"),
        server_name="mq",
        verify_peer=True,
        client_cert=Path("/certs/client.pem"),
        client_key=Path("/certs/client.key"),
    ),
    database=DatabaseSettings(
        host="db.example.org",
        port=5433,
        user="sync",
        password="db-secret-0d2",
        database="lega",
        sslmode="verify-full",
        ca_cert=Path("/certs/ca.pem"),
        client_cert=Path("/certs/db.pem"),
        client_key=Path("/certs/db.key"),
    ),
    archive=StorageSettings(name="archive", s3=(ARCHIVE_S3,), posix=(PosixStorage(path=Path("/archive")),)),
    sync=StorageSettings(name="sync", s3=(SYNC_S3,)),
    schema=SchemaSettings(type="isolated", path=None),
    log=LogSettings(level="debug", format="json"),
    warnings=(),
)


def config(**changes: object) -> dict[str, object]:
    """A deep copy of the valid config with dotted keys set (`None` removes the key)."""
    tree = copy.deepcopy(VALID_CONFIG)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: dict[str, object] = tree
        for part in parents:
            node = node[part]  # type: ignore[assignment]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return tree


def load(tmp_path: Path, tree: object, **env: str) -> Settings:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return load_settings({"CONFIG_FILE": str(path), **env})


def config_error(tmp_path: Path, tree: object, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, tree, **env)
    message = str(caught.value)
    assert message.startswith("config: ")
    assert "\n" not in message
    return message


def test_complete_config_loads_into_typed_values(tmp_path: Path) -> None:
    settings = load(tmp_path, VALID_CONFIG)

    assert settings == EXPECTED
    assert settings.archive.entries == (ARCHIVE_S3, PosixStorage(path=Path("/archive")))


def test_defaults_apply_when_optional_keys_are_absent(tmp_path: Path) -> None:
    tree = config(
        **{
            "sync.remote.port": None,
            "broker.prefetchCount": None,
            "broker.vhost": None,
            "db.port": None,
            "db.database": None,
            "schema": None,
            "log": None,
        }
    )

    settings = load(tmp_path, tree)

    assert settings.remote.port is None
    assert settings.broker.prefetch_count == 2
    assert settings.broker.vhost == "/"
    assert settings.database.port == 5432
    assert settings.database.database == "sda"
    assert settings.database.schema == "sda"
    assert settings.schema == SchemaSettings(type="isolated", path=None)
    assert settings.sync.s3[0].region == "us-east-1"
    assert settings.sync.s3[0].chunk_size == 50 * 1024 * 1024
    assert settings.audit == AuditSettings(cron="0 3 * * *", verify_checksums=False, resync_drifted=False)


def test_audit_keys_come_from_the_environment_and_a_bad_cron_is_named(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        config(),
        SYNC_AUDIT_CRON="30 1 * * 0",
        SYNC_AUDIT_VERIFYCHECKSUMS="true",
        SYNC_AUDIT_RESYNCDRIFTED="yes",
    )
    assert settings.audit == AuditSettings(cron="30 1 * * 0", verify_checksums=True, resync_drifted=True)

    error = config_error(tmp_path, config(), SYNC_AUDIT_CRON="every night")
    assert error == "config: sync.audit.cron (env SYNC_AUDIT_CRON) must be a cron expression, not 'every night'"


def test_the_copy_buffer_limit_is_512mb_unless_set_and_a_bad_one_is_named(tmp_path: Path) -> None:
    assert load(tmp_path, config()).copy.buffer_limit == 512 * 1024**2
    assert load(tmp_path, config(), SYNC_COPY_BUFFERLIMIT="2GB").copy.buffer_limit == 2 * 1024**3

    too_small = config_error(tmp_path, config(), SYNC_COPY_BUFFERLIMIT="8MB")
    assert (
        too_small
        == "config: sync.copy.bufferLimit (env SYNC_COPY_BUFFERLIMIT) must be at least 16MB, not 8388608 bytes"
    )
    not_a_size = config_error(tmp_path, config(), SYNC_COPY_BUFFERLIMIT="lots")
    assert (
        not_a_size
        == "config: sync.copy.bufferLimit (env SYNC_COPY_BUFFERLIMIT) must be a data size such as 50MB, not 'lots'"
    )


def test_the_bandwidth_limit_is_none_unless_set_and_a_bad_one_is_named(tmp_path: Path) -> None:
    assert load(tmp_path, config()).copy.bandwidth_limit == 0
    assert load(tmp_path, config(), SYNC_COPY_BANDWIDTHLIMIT="50MB").copy.bandwidth_limit == 50 * 1024**2
    assert load(tmp_path, config(), SYNC_COPY_BANDWIDTHLIMIT="64KB").copy.bandwidth_limit == 64 * 1024

    too_small = config_error(tmp_path, config(), SYNC_COPY_BANDWIDTHLIMIT="50")
    assert too_small == (
        "config: sync.copy.bandwidthLimit (env SYNC_COPY_BANDWIDTHLIMIT) must be 0 (no limit) or at least 64KB "
        "per second, not 50 bytes"
    )
    not_a_size = config_error(tmp_path, config(), SYNC_COPY_BANDWIDTHLIMIT="fast")
    assert not_a_size == (
        "config: sync.copy.bandwidthLimit (env SYNC_COPY_BANDWIDTHLIMIT) must be a data size such as 50MB, not 'fast'"
    )


def test_the_remote_read_timeout_is_at_most_what_the_retry_budget_allows(tmp_path: Path) -> None:
    assert load(tmp_path, config()).remote.read_timeout_seconds == 30
    assert load(tmp_path, config(), SYNC_REMOTE_READTIMEOUT="5").remote.read_timeout_seconds == 5

    error = config_error(tmp_path, config(), SYNC_REMOTE_READTIMEOUT="31")
    assert error == "config: sync.remote.readTimeout (env SYNC_REMOTE_READTIMEOUT) must be between 1 and 30, not 31"


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        VALID_CONFIG,
        SYNC_REMOTE_HOST="https://other.example.org",
        BROKER_PREFETCHCOUNT="7",
        BROKER_SSL="false",
        C4GH_PASSPHRASE="from-env",
        DB_SSLMODE="disable",
    )

    assert settings.remote.host == "https://other.example.org"
    assert settings.broker.prefetch_count == 7
    assert settings.broker.ssl is False
    assert settings.crypt4gh.passphrase == "from-env"
    assert settings.database.sslmode == "disable"


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    settings = load(tmp_path, VALID_CONFIG, SYNC_REMOTE_HOST="", BROKER_PORT="")

    assert settings.remote.host == "https://remote.example.org"
    assert settings.broker.port == 5671
    message = config_error(tmp_path, config(**{"broker.queue": None}), BROKER_QUEUE="")
    assert "broker.queue" in message and "is required" in message


def test_yaml_keys_are_case_insensitive(tmp_path: Path) -> None:
    tree = config(
        **{
            "c4gh": {"FILEPATH": "/k/node.sec.pem", "Passphrase": "pp", "syncpubkeypath": "/k/receiver.pub.pem"},
            "sync.centerPrefix": None,
            "sync.CENTERPREFIX": "SYNC-UPPER",
            "broker.prefetchCount": None,
            "broker.PrefetchCOUNT": 9,
        }
    )

    settings = load(tmp_path, tree)

    assert settings.crypt4gh == Crypt4ghSettings(Path("/k/node.sec.pem"), Path("/k/receiver.pub.pem"), "pp")
    assert settings.center_prefix == "SYNC-UPPER"
    assert settings.broker.prefetch_count == 9


def test_storage_keys_are_case_insensitive(tmp_path: Path) -> None:
    tree = config(
        **{
            "storage": {
                "ARCHIVE": {"Posix": [{"PATH": "/archive"}]},
                "Sync": {"POSIX": [{"Path": "/sync", "Max_Objects": 5}]},
            }
        }
    )

    settings = load(tmp_path, tree)

    assert settings.archive.posix == (PosixStorage(path=Path("/archive")),)
    assert settings.sync.posix == (PosixStorage(path=Path("/sync"), max_objects=5),)
    assert settings.warnings == ()


DB_ENV_SPELLINGS = {
    "DB": {
        "DB_HOST": "pg.example.org",
        "DB_PORT": "6432",
        "DB_USER": "reader",
        "DB_PASSWORD": "pw",
        "DB_DATABASE": "sda2",
        "DB_SSLMODE": "verify-full",
        "DB_CACERT": "/c/ca.pem",
        "DB_CLIENTCERT": "/c/cert.pem",
        "DB_CLIENTKEY": "/c/key.pem",
        "DB_SCHEMA": "sda_2",
    },
    "DATABASE": {
        "DATABASE_HOST": "pg.example.org",
        "DATABASE_PORT": "6432",
        "DATABASE_USER": "reader",
        "DATABASE_PASSWORD": "pw",
        "DATABASE_NAME": "sda2",
        "DATABASE_SSL_MODE": "verify-full",
        "DATABASE_CA_CERT": "/c/ca.pem",
        "DATABASE_CLIENT_CERT": "/c/cert.pem",
        "DATABASE_CLIENT_KEY": "/c/key.pem",
        "DATABASE_SCHEMA": "sda_2",
    },
}


@pytest.mark.parametrize("spelling", DB_ENV_SPELLINGS)
def test_both_database_env_spellings(tmp_path: Path, spelling: str) -> None:
    settings = load(tmp_path, config(db=None), **DB_ENV_SPELLINGS[spelling])

    assert settings.database == DatabaseSettings(
        host="pg.example.org",
        port=6432,
        user="reader",
        password="pw",
        database="sda2",
        sslmode="verify-full",
        ca_cert=Path("/c/ca.pem"),
        client_cert=Path("/c/cert.pem"),
        client_key=Path("/c/key.pem"),
        schema="sda_2",
    )


def test_database_yaml_section_with_current_sda_names(tmp_path: Path) -> None:
    tree = config(
        db=None,
        database={"host": "pg", "user": "reader", "name": "sda3", "ssl_mode": "verify-ca", "ca_cert": "/c/ca.pem"},
    )

    database = load(tmp_path, tree).database

    assert (database.host, database.user, database.database, database.sslmode) == ("pg", "reader", "sda3", "verify-ca")
    assert database.ca_cert == Path("/c/ca.pem")


def test_sync_remote_post_is_accepted_as_the_port(tmp_path: Path) -> None:
    tree = config(**{"sync.remote.port": None})

    assert load(tmp_path, tree, SYNC_REMOTE_POST="9443").remote.port == 9443
    assert load(tmp_path, config(**{"sync.remote.port": None, "sync.remote.post": 9444})).remote.port == 9444


REQUIRED_KEYS = {
    "sync.centerPrefix": "SYNC_CENTERPREFIX",
    "sync.remote.host": "SYNC_REMOTE_HOST",
    "sync.remote.user": "SYNC_REMOTE_USER",
    "sync.remote.password": "SYNC_REMOTE_PASSWORD",
    "c4gh.filePath": "C4GH_FILEPATH",
    "c4gh.passphrase": "C4GH_PASSPHRASE",
    "c4gh.syncPubKeyPath": "C4GH_SYNCPUBKEYPATH",
    "broker.host": "BROKER_HOST",
    "broker.port": "BROKER_PORT",
    "broker.user": "BROKER_USER",
    "broker.password": "BROKER_PASSWORD",
    "broker.queue": "BROKER_QUEUE",
    "db.host": "DB_HOST",
    "db.user": "DB_USER",
}


@pytest.mark.parametrize(("key", "env"), REQUIRED_KEYS.items())
def test_missing_required_key_names_it(tmp_path: Path, key: str, env: str) -> None:
    message = config_error(tmp_path, config(**{key: None}))

    assert message.startswith(f"config: {key} (env {env}")
    assert message.endswith("is required")


def test_required_key_present_only_in_environment_is_enough(tmp_path: Path) -> None:
    env = {REQUIRED_KEYS[key]: "/from/env" for key in ("c4gh.filePath", "c4gh.syncPubKeyPath")}

    settings = load(tmp_path, config(**{"c4gh.filePath": None, "c4gh.syncPubKeyPath": None}), **env)

    assert settings.crypt4gh.private_key_path == Path("/from/env")
    assert settings.crypt4gh.receiver_public_key_path == Path("/from/env")


SSL_DB = {"db.cacert": None, "db.clientcert": None, "db.clientkey": None}


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({**SSL_DB, "db.sslmode": "require"}, "db.cacert (env DB_CACERT or DATABASE_CA_CERT)"),
        ({**SSL_DB, "db.sslmode": "prefer"}, "db.cacert"),
        ({**SSL_DB, "db.sslmode": "verify-ca"}, "db.cacert"),
        ({"db.clientcert": None}, "db.clientcert (env DB_CLIENTCERT or DATABASE_CLIENT_CERT)"),
        ({"db.clientkey": None}, "db.clientkey (env DB_CLIENTKEY or DATABASE_CLIENT_KEY)"),
    ],
)
def test_sslmode_needs_its_certificates(tmp_path: Path, changes: dict[str, object], missing: str) -> None:
    message = config_error(tmp_path, config(**changes))

    assert message.startswith(f"config: {missing}")
    assert "required" in message


def test_sslmode_disable_needs_no_certificates(tmp_path: Path) -> None:
    database = load(tmp_path, config(**SSL_DB, **{"db.sslmode": "disable"})).database

    assert (database.sslmode, database.ca_cert, database.client_cert, database.client_key) == (
        "disable",
        None,
        None,
        None,
    )


def test_sslmode_verify_ca_needs_no_client_certificate(tmp_path: Path) -> None:
    database = load(
        tmp_path, config(**{"db.sslmode": "verify-ca", "db.clientcert": None, "db.clientkey": None})
    ).database

    assert database.ca_cert == Path("/certs/ca.pem")
    assert database.client_cert is None


def test_unknown_sslmode_is_an_error(tmp_path: Path) -> None:
    assert "db.sslmode" in config_error(tmp_path, VALID_CONFIG, DB_SSLMODE="sometimes")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"BROKER_PORT": "abc"}, "broker.port"),
        ({"BROKER_PORT": "70000"}, "broker.port"),
        ({"DB_PORT": "0"}, "db.port"),
        ({"SYNC_REMOTE_PORT": "65536"}, "sync.remote.port"),
        ({"BROKER_PREFETCHCOUNT": "-1"}, "broker.prefetchCount"),
        ({"BROKER_PREFETCHCOUNT": "0"}, "broker.prefetchCount"),
        ({"BROKER_SSL": "maybe"}, "broker.ssl"),
        ({"BROKER_VERIFYPEER": "2"}, "broker.verifyPeer"),
        ({"LOG_LEVEL": "verbose"}, "log.level"),
    ],
)
def test_malformed_value_names_the_key(tmp_path: Path, env: dict[str, str], key: str) -> None:
    message = config_error(tmp_path, VALID_CONFIG, **env)

    assert message.startswith(f"config: {key} (env ")
    assert next(iter(env.values())) in message


def test_broker_tls_with_verify_peer_needs_client_certificate(tmp_path: Path) -> None:
    message = config_error(tmp_path, config(**{"broker.clientCert": None}))

    assert message == "config: broker.clientCert (env BROKER_CLIENTCERT or BROKER_CLIENT_CERT) is required"


def s3_entry(**changes: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "endpoint": "https://s3.example.org",
        "access_key": "a",
        "secret_key": "s",
        "bucket_prefix": "sync",
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


def with_storage(archive: object, sync: object) -> dict[str, object]:
    return config(**{"storage": {"archive": archive, "sync": sync}})


GOOD_ARCHIVE = {"posix": [{"path": "/archive"}]}
GOOD_SYNC = {"posix": [{"path": "/sync"}]}


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (
            with_storage({"s3": [s3_entry(endpoint="http://s3:9000")]}, GOOD_SYNC),
            "config: storage.archive.s3[0].endpoint is http: but storage.archive.s3[0].disable_https is not true",
        ),
        (
            with_storage(GOOD_ARCHIVE, {"s3": [s3_entry(disable_https=True)]}),
            "config: storage.sync.s3[0].endpoint is https: but storage.sync.s3[0].disable_https is true",
        ),
        (
            with_storage({"posix": [{"path": "/archive"}, {"path": "archive"}]}, GOOD_SYNC),
            "config: storage.archive.posix[1].path must be an absolute path, not 'archive'",
        ),
        (
            with_storage(GOOD_ARCHIVE, {"posix": [{"path": "./sync"}]}),
            "config: storage.sync.posix[0].path must be an absolute path, not 'sync'",
        ),
        (
            with_storage({"s3": [s3_entry(chunk_size="4MB")]}, GOOD_SYNC),
            f"config: storage.archive.s3[0].chunk_size must be between 5MB and 1GB, not {4 * 1024**2} bytes",
        ),
        (
            with_storage({"s3": [s3_entry(chunk_size="1025MB")]}, GOOD_SYNC),
            f"config: storage.archive.s3[0].chunk_size must be between 5MB and 1GB, not {1025 * 1024**2} bytes",
        ),
        (
            with_storage({"s3": [s3_entry(chunk_size="lots")]}, GOOD_SYNC),
            "config: storage.archive.s3[0].chunk_size must be a data size such as 50MB, not 'lots'",
        ),
        (
            with_storage(GOOD_ARCHIVE, {"s3": [s3_entry(bucket_prefix=None)]}),
            "config: storage.sync.s3[0].bucket_prefix is required",
        ),
        (
            with_storage({"s3": [s3_entry(secret_key=None)]}, GOOD_SYNC),
            "config: storage.archive.s3[0].secret_key is required",
        ),
        (with_storage({}, GOOD_SYNC), "config: storage.archive needs at least one s3 or posix entry"),
        (
            with_storage({"s3": [], "posix": []}, GOOD_SYNC),
            "config: storage.archive needs at least one s3 or posix entry",
        ),
        (with_storage(GOOD_ARCHIVE, {}), "config: storage.sync needs at least one s3 or posix entry to write to"),
        (
            with_storage(GOOD_ARCHIVE, {"posix": [{"path": "/sync", "writer_disabled": True}]}),
            "config: storage.sync needs at least one s3 or posix entry to write to",
        ),
        (
            with_storage(GOOD_ARCHIVE, {"posix": [{"path": "/sync", "max_objects": -1}]}),
            "config: storage.sync.posix[0].max_objects must be at least 0, not -1",
        ),
        (
            with_storage({"posix": {"path": "/archive"}}, GOOD_SYNC),
            "config: storage.archive.posix must be a list of entries",
        ),
    ],
)
def test_storage_entry_errors(tmp_path: Path, tree: dict[str, object], expected: str) -> None:
    assert config_error(tmp_path, tree) == expected


def test_chunk_size_bounds_are_inclusive(tmp_path: Path) -> None:
    settings = load(tmp_path, with_storage({"s3": [s3_entry(chunk_size="5MB"), s3_entry(chunk_size="1GB")]}, GOOD_SYNC))

    assert [entry.chunk_size for entry in settings.archive.s3] == [5 * 1024**2, 1024**3]


def test_every_storage_v2_key_is_accepted_on_both_sides(tmp_path: Path) -> None:
    every_key = {
        "endpoint": "http://s3:9000",
        "access_key": "a",
        "secret_key": "s",
        "region": "eu-west-1",
        "ca_cert": "/certs/ca.pem",
        "disable_https": True,
        "chunk_size": "6MB",
        "bucket_prefix": "archive",
        "max_buckets": 2,
        "max_objects": 10,
        "max_size": "1GB",
        "writer_disabled": False,
    }
    posix_every_key = {**every_key, "path": "/p"}
    tree = with_storage(
        {"s3": [every_key], "posix": [posix_every_key]}, {"s3": [every_key], "posix": [posix_every_key]}
    )

    settings = load(tmp_path, tree)

    assert settings.warnings == ()
    assert settings.archive.s3[0].bucket_prefix == "archive"
    assert settings.archive.s3[0].max_buckets == 2
    assert settings.archive.s3[0].chunk_size == 6 * 1024**2
    assert settings.sync.posix == (PosixStorage(path=Path("/p"), max_objects=10, max_size=1024**3),)


def test_unknown_keys_are_warnings_not_errors(tmp_path: Path) -> None:
    tree = with_storage(
        {"posix": [{"path": "/archive", "colour": "blue"}], "gcs": [{"bucket": "x"}]},
        {"s3": [s3_entry(speed="fast")]},
    )

    settings = load(tmp_path, tree)

    assert settings.archive.posix == (PosixStorage(path=Path("/archive")),)
    assert len(settings.warnings) == 3
    assert all(warning.startswith("config: ") and "\n" not in warning for warning in settings.warnings)
    assert any("storage.archive.posix[0].colour" in warning for warning in settings.warnings)
    assert any("storage.archive.gcs" in warning for warning in settings.warnings)
    assert any("storage.sync.s3[0].speed" in warning for warning in settings.warnings)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": str(missing)})

    assert str(caught.value) == f"config: the file {missing} named by CONFIG_FILE does not exist"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("sync:\n  centerPrefix: [unclosed\n", "is not valid YAML at line"),
        ("- a\n- b\n", "must hold a YAML mapping of keys"),
        ("just a string\n", "must hold a YAML mapping of keys"),
    ],
)
def test_unusable_config_file_is_a_one_line_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(content)

    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": str(path)})

    message = str(caught.value)
    assert message.startswith(f"config: {path} ")
    assert expected in message
    assert "\n" not in message


def test_secrets_never_appear_in_repr(tmp_path: Path) -> None:
    settings = load(tmp_path, VALID_CONFIG)
    shown = repr(settings) + str(settings)

    assert "mapping_stream" in shown
    for secret in SECRETS:
        assert secret not in shown


@pytest.mark.parametrize(
    "host",
    [
        "https://sync-user:remote-secret-7a1@remote.example.org",
        "http://sync-user:remote-secret-7a1@remote.example.org:8080/api",
        "sync-user:remote-secret-7a1@remote.example.org",
        "https://remote-secret-7a1@remote.example.org",
    ],
)
def test_credentials_in_the_remote_url_are_refused_without_showing_them(tmp_path: Path, host: str) -> None:
    expected = (
        "config: sync.remote.host (env SYNC_REMOTE_HOST) holds credentials (user:password@ before the host): "
        "set sync.remote.user and sync.remote.password instead"
    )

    assert config_error(tmp_path, config(**{"sync.remote.host": host})) == expected
    assert config_error(tmp_path, VALID_CONFIG, SYNC_REMOTE_HOST=host) == expected


def test_a_remote_url_that_cannot_be_parsed_is_refused_without_showing_it(tmp_path: Path) -> None:
    message = config_error(tmp_path, config(**{"sync.remote.host": "http://u:remote-secret-7a1@[::1"}))

    assert message == "config: sync.remote.host (env SYNC_REMOTE_HOST) is not a URL: Invalid IPv6 URL"
    assert "remote-secret-7a1" not in message


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("http://remote.example.org", True),
        ("HTTP://remote.example.org:8080/api", True),
        ("http://10.0.0.7", True),
        ("https://remote.example.org", False),
        ("remote.example.org", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.1.2.3", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
    ],
)
def test_an_http_remote_on_another_host_is_a_warning_basic_auth_in_clear_text(
    tmp_path: Path, host: str, warned: bool
) -> None:
    settings = load(tmp_path, config(**{"sync.remote.host": host}))

    warning = (
        "config: sync.remote.host (env SYNC_REMOTE_HOST) is http: the password of sync.remote.user goes to the "
        "remote in clear text (Basic auth); use https"
    )
    assert settings.warnings == ((warning,) if warned else ())
