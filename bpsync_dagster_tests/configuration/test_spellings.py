"""Configuration as SDA deployments write it: every spelling of every key (in the environment, nested
in YAML and dotted in one YAML key), the rule for a setting given twice, `CONFIGFILE` and
`CONFIGPATH`, `db.schema`, and the README's key table against the keys the loader reads."""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bpsync_dagster.configuration import ConfigError, Settings, load_settings, loader
from bpsync_dagster.configuration.config_file import CONFIG_FILE_VARIABLES
from bpsync_dagster.configuration.loader import STORAGE_ENTRY_KEYS, env_name
from bpsync_dagster.configuration.settings import PosixStorage
from bpsync_dagster_tests.configuration.test_loader import (
    EXPECTED,
    GOOD_ARCHIVE,
    GOOD_SYNC,
    VALID_CONFIG,
    config_error,
    load,
    with_storage,
)
from bpsync_dagster_tests.support.environment import PROJECT_ROOT


@dataclass(frozen=True)
class Setting:
    """A setting's spellings (the canonical one first), a value to write and what it reads as."""

    keys: tuple[str, ...]
    value: str
    read: Callable[[Settings], object]
    expected: object


SETTINGS = (
    Setting(("sync.centerPrefix",), "NODE2", lambda s: s.center_prefix, "NODE2"),
    Setting(("sync.remote.host",), "https://other.example.org", lambda s: s.remote.host, "https://other.example.org"),
    Setting(("sync.remote.port", "sync.remote.post"), "9443", lambda s: s.remote.port, 9443),
    Setting(("sync.remote.user",), "other-user", lambda s: s.remote.user, "other-user"),
    Setting(("sync.remote.password",), "other-password", lambda s: s.remote.password, "other-password"),
    Setting(("sync.remote.caCert",), "/c/remote-ca.pem", lambda s: s.remote.ca_cert, Path("/c/remote-ca.pem")),
    Setting(("sync.remote.readTimeout",), "12", lambda s: s.remote.read_timeout_seconds, 12),
    Setting(("c4gh.filePath",), "/k/other.sec.pem", lambda s: s.crypt4gh.private_key_path, Path("/k/other.sec.pem")),
    Setting(("c4gh.passphrase",), "other-pass", lambda s: s.crypt4gh.passphrase, "other-pass"),
    Setting(
        ("c4gh.syncPubKeyPath",),
        "/k/other.pub.pem",
        lambda s: s.crypt4gh.receiver_public_key_path,
        Path("/k/other.pub.pem"),
    ),
    Setting(("broker.host",), "mq2.example.org", lambda s: s.broker.host, "mq2.example.org"),
    Setting(("broker.port",), "5673", lambda s: s.broker.port, 5673),
    Setting(("broker.user",), "other-user", lambda s: s.broker.user, "other-user"),
    Setting(("broker.password",), "other-password", lambda s: s.broker.password, "other-password"),
    Setting(("broker.queue",), "other_stream", lambda s: s.broker.queue, "other_stream"),
    Setting(("broker.vhost",), "other", lambda s: s.broker.vhost, "other"),
    Setting(("broker.exchange",), "other", lambda s: s.broker.exchange, "other"),
    Setting(("broker.prefetchCount", "broker.prefetch_count"), "9", lambda s: s.broker.prefetch_count, 9),
    Setting(("broker.ssl",), "false", lambda s: s.broker.ssl, False),
    Setting(("broker.caCert", "broker.ca_cert"), "/c/mq-ca.pem", lambda s: s.broker.ca_cert, Path("/c/mq-ca.pem")),
    Setting(("broker.serverName",), "mq2", lambda s: s.broker.server_name, "mq2"),
    Setting(("broker.verifyPeer",), "false", lambda s: s.broker.verify_peer, False),
    Setting(
        ("broker.clientCert", "broker.client_cert"), "/c/mq.pem", lambda s: s.broker.client_cert, Path("/c/mq.pem")
    ),
    Setting(("broker.clientKey", "broker.client_key"), "/c/mq.key", lambda s: s.broker.client_key, Path("/c/mq.key")),
    Setting(("db.host", "database.host"), "pg2.example.org", lambda s: s.database.host, "pg2.example.org"),
    Setting(("db.port", "database.port"), "6543", lambda s: s.database.port, 6543),
    Setting(("db.user", "database.user"), "reader", lambda s: s.database.user, "reader"),
    Setting(("db.password", "database.password"), "other-password", lambda s: s.database.password, "other-password"),
    Setting(("db.database", "database.name"), "sda9", lambda s: s.database.database, "sda9"),
    Setting(("db.sslmode", "database.ssl_mode"), "verify-ca", lambda s: s.database.sslmode, "verify-ca"),
    Setting(("db.cacert", "database.ca_cert"), "/c/pg-ca.pem", lambda s: s.database.ca_cert, Path("/c/pg-ca.pem")),
    Setting(
        ("db.clientcert", "database.client_cert"), "/c/pg.pem", lambda s: s.database.client_cert, Path("/c/pg.pem")
    ),
    Setting(("db.clientkey", "database.client_key"), "/c/pg.key", lambda s: s.database.client_key, Path("/c/pg.key")),
    Setting(("db.schema", "database.schema"), "sda_sync", lambda s: s.database.schema, "sda_sync"),
    Setting(("schema.type",), "federated", lambda s: s.schema.type, "federated"),
    Setting(("schema.path",), "/schemas", lambda s: s.schema.path, Path("/schemas")),
    Setting(("log.level",), "warn", lambda s: s.log.level, "warn"),
    Setting(("log.format",), "text", lambda s: s.log.format, "text"),
    Setting(("sync.sensor.interval",), "7", lambda s: s.sensor.interval_seconds, 7),
    Setting(("sync.sensor.batchSize",), "70", lambda s: s.sensor.batch_size, 70),
    Setting(("sync.sensor.queueType",), "classic", lambda s: s.sensor.queue_type, "classic"),
    Setting(("sync.sensor.streamStart",), "first", lambda s: s.sensor.stream_start, "first"),
    Setting(("sync.audit.cron",), "30 1 * * 0", lambda s: s.audit.cron, "30 1 * * 0"),
    Setting(("sync.audit.verifyChecksums",), "true", lambda s: s.audit.verify_checksums, True),
    Setting(("sync.audit.resyncDrifted",), "true", lambda s: s.audit.resync_drifted, True),
    Setting(("sync.copy.bufferLimit",), "1GB", lambda s: s.copy.buffer_limit, 1024**3),
    Setting(("sync.copy.bandwidthLimit",), "50MB", lambda s: s.copy.bandwidth_limit, 50 * 1024**2),
)
FORMS = ("env", "yaml-nested", "yaml-dotted")


def spelling_cases() -> list[object]:
    return [
        pytest.param(setting, key, form, id=f"{form}-{env_name(key) if form == 'env' else key}")
        for setting in SETTINGS
        for key in setting.keys
        for form in FORMS
    ]


def without(tree: dict[str, object], key: str) -> None:
    """Remove a nested key from the tree if it is there."""
    *parents, last = key.split(".")
    node: object = tree
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(last, None)


def nested(tree: dict[str, object], key: str, value: object) -> None:
    *parents, last = key.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})  # type: ignore[assignment]
    node[last] = value


@pytest.mark.parametrize(("setting", "key", "form"), spelling_cases())
def test_every_spelling_of_every_key(tmp_path: Path, setting: Setting, key: str, form: str) -> None:
    tree = copy.deepcopy(VALID_CONFIG)
    for spelling in setting.keys:
        without(tree, spelling)
    env = {}
    if form == "env":
        env[env_name(key)] = setting.value
    elif form == "yaml-nested":
        nested(tree, key, setting.value)
    else:
        tree[key] = setting.value

    assert setting.read(load(tmp_path, tree, **env)) == setting.expected


def keys_the_loader_reads(tmp_path: Path) -> list[tuple[tuple[str, ...], bool]]:
    """Every `(spellings, has an env form)` the loader looks up for the complete config."""
    consulted: list[tuple[tuple[str, ...], bool]] = []
    original = loader._Source.raw

    def recording(self: loader._Source, keys: tuple[str, ...]) -> object | None:
        consulted.append((keys, self._environ is not None))
        return original(self, keys)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loader._Source, "raw", recording)
        load(tmp_path, VALID_CONFIG)
    return consulted


def storage_entry_keys_read(tmp_path: Path) -> dict[str, set[str]]:
    """Storage entry key -> the backends (s3, posix) whose entries the loader reads it from."""
    read: dict[str, set[str]] = {}
    for keys, has_env in keys_the_loader_reads(tmp_path):
        if not has_env:
            (key,) = keys
            match = re.fullmatch(r"storage\.(?:archive|sync)\.(s3|posix)\[\d+\]\.(\w+)", key)
            assert match, key
            read.setdefault(match.group(2), set()).add(match.group(1))
    return read


def test_every_spelling_the_loader_reads_is_tested(tmp_path: Path) -> None:
    settings = {keys for keys, has_env in keys_the_loader_reads(tmp_path) if has_env}

    assert settings == {setting.keys for setting in SETTINGS}


# --- the README table ----------------------------------------------------------------------------


def readme_tables() -> list[list[list[str]]]:
    """The tables of the README's Configuration section, as rows of cells (header rows included)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    tables: list[list[list[str]]] = [[]]
    for line in section.splitlines():
        if line.startswith("|"):
            if not re.fullmatch(r"\|(\s*-+\s*\|)+", line):
                tables[-1].append([cell.strip() for cell in line.strip("|").split("|")])
        elif tables[-1]:
            tables.append([])
    return [table for table in tables if table]


def table(header: str) -> list[list[str]]:
    (rows,) = [rows[1:] for rows in readme_tables() if rows[0][0] == header]
    return rows


def quoted(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


def test_the_readme_lists_every_key_with_its_env_name_and_synonyms(tmp_path: Path) -> None:
    rows = {next(iter(quoted(row[0]))): row for row in table("key")}
    for row in table("key"):
        assert len(quoted(row[0])) == 1, f"one key per row: {row[0]}"

    settings = {keys for keys, has_env in keys_the_loader_reads(tmp_path) if has_env}
    assert set(rows) == {keys[0] for keys in settings}
    for keys in settings:
        key, env, synonyms, *_ = rows[keys[0]]
        assert quoted(env) == {env_name(keys[0])}, keys[0]
        assert quoted(synonyms) == {*keys[1:], *(env_name(key) for key in keys[1:])}, keys[0]


def test_the_readme_lists_every_storage_entry_key_and_where_it_is_read(tmp_path: Path) -> None:
    rows = {next(iter(quoted(row[0]))): row for row in table("storage entry key")}
    read = storage_entry_keys_read(tmp_path)

    assert set(rows) == set(STORAGE_ENTRY_KEYS) == set(read)
    for key, row in rows.items():
        assert quoted(row[1]) == read[key], key


def test_the_readme_names_every_variable_that_names_the_config_file() -> None:
    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]

    for variable in CONFIG_FILE_VARIABLES:
        assert f"`{variable}`" in section


# --- dotted keys ----------------------------------------------------------------------------------


def dotted(tree: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Every setting of the tree as one dotted YAML key, as the SDA Helm chart renders them."""
    flat: dict[str, object] = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            flat.update(dotted(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def test_a_file_of_dotted_keys_reads_as_the_nested_one(tmp_path: Path) -> None:
    tree = dotted({key: value for key, value in VALID_CONFIG.items() if key != "storage"})
    tree["storage"] = VALID_CONFIG["storage"]
    assert "schema.type" in tree and "c4gh.filePath" in tree and "broker.host" in tree

    assert load(tmp_path, tree) == EXPECTED


def test_partly_dotted_keys_read_as_nested_ones(tmp_path: Path) -> None:
    tree = copy.deepcopy(VALID_CONFIG)
    remote = tree["sync"].pop("remote")  # type: ignore[union-attr]
    tree["sync"].update({f"remote.{name}": value for name, value in remote.items()})  # type: ignore[union-attr]
    tree["db.cacert"] = tree["db"].pop("cacert")  # type: ignore[union-attr]

    assert load(tmp_path, tree) == EXPECTED


def test_a_setting_written_both_dotted_and_nested_with_one_value_is_fine(tmp_path: Path) -> None:
    tree = copy.deepcopy(VALID_CONFIG)
    tree["schema.type"] = "isolated"
    tree["broker.prefetchCount"] = "4"
    tree["Broker"] = {"prefetch_count": 4}

    assert load(tmp_path, tree) == EXPECTED


def test_storage_may_be_written_with_dotted_keys(tmp_path: Path) -> None:
    tree = copy.deepcopy(VALID_CONFIG)
    del tree["storage"]
    tree["storage.archive.posix"] = [{"Path": "/archive"}]
    tree["storage"] = {"sync.posix": [{"path": "/sync"}]}

    settings = load(tmp_path, tree)

    assert settings.archive.posix == (PosixStorage(path=Path("/archive")),)
    assert settings.sync.posix == (PosixStorage(path=Path("/sync")),)
    assert settings.warnings == ()


# --- one setting given twice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "key"),
    [
        ("DB_HOST", "DATABASE_HOST", "db.host"),
        ("DB_DATABASE", "DATABASE_NAME", "db.database"),
        ("DB_SCHEMA", "DATABASE_SCHEMA", "db.schema"),
        ("SYNC_REMOTE_PORT", "SYNC_REMOTE_POST", "sync.remote.port"),
        ("BROKER_CACERT", "BROKER_CA_CERT", "broker.caCert"),
        ("BROKER_PREFETCHCOUNT", "BROKER_PREFETCH_COUNT", "broker.prefetchCount"),
    ],
)
def test_two_env_spellings_with_different_values_fail_naming_both(
    tmp_path: Path, first: str, second: str, key: str
) -> None:
    message = config_error(tmp_path, VALID_CONFIG, **{first: "11", second: "12"})

    assert message == f"config: {key} is set twice with different values: env {first} and env {second}"


def test_two_env_spellings_with_the_same_value_are_fine(tmp_path: Path) -> None:
    settings = load(
        tmp_path, VALID_CONFIG, DB_HOST="pg", DATABASE_HOST="pg", SYNC_REMOTE_PORT="9", SYNC_REMOTE_POST="9"
    )

    assert (settings.database.host, settings.remote.port) == ("pg", 9)


YAML_TWICE = [
    pytest.param(
        {"database": {"host": "pg2"}},
        "db.host is set twice with different values in {path}: 'db: host' and 'database: host'",
        id="db-and-database",
    ),
    pytest.param(
        {"db.host": "pg2"},
        "db.host is set twice with different values in {path}: 'db: host' and 'db.host'",
        id="nested-and-dotted",
    ),
    pytest.param(
        {"schema.type": "federated"},
        "schema.type is set twice with different values in {path}: 'schema: type' and 'schema.type'",
        id="schema.type-dotted-and-nested",
    ),
    pytest.param(
        {"broker.ca_cert": "/other.pem"},
        "broker.caCert is set twice with different values in {path}: 'broker: caCert' and 'broker.ca_cert'",
        id="caCert-and-ca_cert",
    ),
    pytest.param(
        {"sync": {"remote.post": 1}},
        "sync.remote.port is set twice with different values in {path}: 'sync: remote: port' and 'sync: remote.post'",
        id="port-and-partly-dotted-post",
    ),
    pytest.param(
        {"BROKER": {"PREFETCHCOUNT": 5}},
        "broker.prefetchcount is set twice with different values in {path}: "
        "'BROKER: PREFETCHCOUNT' and 'broker: prefetchCount'",
        id="two-cases",
    ),
]


def merged(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    tree = copy.deepcopy(base)
    for name, value in extra.items():
        if isinstance(value, dict) and isinstance(tree.get(name), dict):
            tree[name] = merged(tree[name], value)  # type: ignore[arg-type]
        else:
            tree[name] = value
    return tree


@pytest.mark.parametrize(("extra", "expected"), YAML_TWICE)
def test_two_yaml_spellings_with_different_values_fail_naming_both(
    tmp_path: Path, extra: dict[str, object], expected: str
) -> None:
    message = config_error(tmp_path, merged(VALID_CONFIG, extra))

    assert message == "config: " + expected.format(path=tmp_path / "config.yaml")


def test_yaml_spellings_compare_as_text(tmp_path: Path) -> None:
    settings = load(tmp_path, merged(VALID_CONFIG, {"database": {"port": "5433"}, "db.port": 5433}))

    assert settings.database.port == 5433


def test_env_overrides_yaml_whatever_the_spelling(tmp_path: Path) -> None:
    tree = merged(VALID_CONFIG, {"database": {"name": "sda3"}})
    del tree["db"]["database"]  # type: ignore[attr-defined]

    settings = load(tmp_path, tree, DB_DATABASE="sda4", DATABASE_HOST="pg4", BROKER_CA_CERT="/env/ca.pem")

    assert (settings.database.database, settings.database.host) == ("sda4", "pg4")
    assert settings.broker.ca_cert == Path("/env/ca.pem")


def test_a_file_that_gives_a_setting_twice_fails_even_when_the_env_sets_it(tmp_path: Path) -> None:
    message = config_error(tmp_path, merged(VALID_CONFIG, {"database": {"host": "pg2"}}), DB_HOST="pg3")

    assert message.startswith("config: db.host is set twice with different values in ")


def test_a_setting_given_twice_never_shows_its_values(tmp_path: Path) -> None:
    env_message = config_error(tmp_path, VALID_CONFIG, DB_PASSWORD="first-secret", DATABASE_PASSWORD="second-secret")
    yaml_message = config_error(tmp_path, merged(VALID_CONFIG, {"database": {"password": "second-secret"}}))

    for message in (env_message, yaml_message):
        assert "db.password is set twice" in message
        for secret in ("first-secret", "second-secret", VALID_CONFIG["db"]["password"]):  # type: ignore[index]
            assert secret not in message


def test_a_storage_entry_key_written_twice_fails_naming_both(tmp_path: Path) -> None:
    tree = with_storage({"posix": [{"path": "/archive", "PATH": "/other"}]}, GOOD_SYNC)

    message = config_error(tmp_path, tree)

    assert message == (
        f"config: storage.archive.posix[0].path is set twice with different values in {tmp_path / 'config.yaml'}: "
        "'storage.archive.posix[0]: PATH' and 'storage.archive.posix[0]: path'"
    )


def test_storage_written_as_a_value_and_as_a_section_fails_naming_both(tmp_path: Path) -> None:
    tree = with_storage(GOOD_ARCHIVE, GOOD_SYNC)
    tree["storage.sync"] = "posix"

    message = config_error(tmp_path, tree)

    assert message == (
        f"config: storage.sync is written both as a value and as a section in {tmp_path / 'config.yaml'}: "
        "'storage.sync' and 'storage: sync: posix'"
    )


# --- which file -------------------------------------------------------------------------------------


def write_config(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(VALID_CONFIG))
    return path


@pytest.mark.parametrize("variable", ["CONFIG_FILE", "CONFIGFILE"])
def test_a_variable_names_the_file(tmp_path: Path, variable: str) -> None:
    path = write_config(tmp_path / "elsewhere" / "service.yaml")

    assert load_settings({variable: str(path)}) == EXPECTED


def test_configpath_names_the_directory_of_config_yaml(tmp_path: Path) -> None:
    write_config(tmp_path / "etc" / "config.yaml")

    assert load_settings({"CONFIGPATH": str(tmp_path / "etc")}) == EXPECTED


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param(
            {"CONFIG_FILE": "{dir}/config.yaml", "CONFIGFILE": "{dir}/config.yaml"}, id="CONFIG_FILE+CONFIGFILE"
        ),
        pytest.param({"CONFIG_FILE": "{dir}/config.yaml", "CONFIGPATH": "{dir}"}, id="CONFIG_FILE+CONFIGPATH"),
        pytest.param({"CONFIGFILE": "{dir}/config.yaml", "CONFIGPATH": "{dir}/"}, id="CONFIGFILE+CONFIGPATH"),
        pytest.param({"CONFIGFILE": "{dir}/../etc/config.yaml", "CONFIGPATH": "{link}"}, id="through-a-symlink"),
        pytest.param({"CONFIG_FILE": "", "CONFIGPATH": "{dir}"}, id="empty-counts-as-unset"),
    ],
)
def test_variables_that_name_the_same_file_agree(tmp_path: Path, environ: dict[str, str]) -> None:
    directory = tmp_path / "etc"
    write_config(directory / "config.yaml")
    (tmp_path / "link").symlink_to(directory)

    filled = {name: value.format(dir=directory, link=tmp_path / "link") for name, value in environ.items()}

    assert load_settings(filled) == EXPECTED


@pytest.mark.parametrize(
    ("first", "second"), [("CONFIG_FILE", "CONFIGFILE"), ("CONFIG_FILE", "CONFIGPATH"), ("CONFIGFILE", "CONFIGPATH")]
)
def test_variables_that_name_different_files_fail_naming_both(tmp_path: Path, first: str, second: str) -> None:
    one = write_config(tmp_path / "one" / "config.yaml")
    two = write_config(tmp_path / "two" / "config.yaml")
    named = {first: str(one), second: str(two.parent if second == "CONFIGPATH" else two)}

    with pytest.raises(ConfigError) as caught:
        load_settings(named)

    assert str(caught.value) == f"config: {first} and {second} name different files: {one} and {two}"


@pytest.mark.parametrize(
    ("variable", "make", "expected"),
    [
        ("CONFIGFILE", None, "the file {path}/absent.yaml named by CONFIGFILE does not exist"),
        ("CONFIG_FILE", None, "the file {path}/absent.yaml named by CONFIG_FILE does not exist"),
        ("CONFIGPATH", None, "the directory {path}/absent.yaml named by CONFIGPATH does not exist"),
        ("CONFIGPATH", "directory", "the directory {path}/absent.yaml named by CONFIGPATH holds no config.yaml"),
    ],
)
def test_a_named_file_that_does_not_exist_names_the_variable(
    tmp_path: Path, variable: str, make: str | None, expected: str
) -> None:
    if make == "directory":
        (tmp_path / "absent.yaml").mkdir()

    with pytest.raises(ConfigError) as caught:
        load_settings({variable: str(tmp_path / "absent.yaml")})

    assert str(caught.value) == "config: " + expected.format(path=tmp_path)


# --- db.schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["sda", "SDA_2", "_private", "s" * 63])
def test_db_schema_is_an_sql_identifier(tmp_path: Path, schema: str) -> None:
    assert load(tmp_path, VALID_CONFIG, DATABASE_SCHEMA=schema).database.schema == schema


@pytest.mark.parametrize("schema", ["2sda", "sda-sync", "sda.files", "sda;drop", '"sda"', "sdä", "s" * 64, " sda"])
def test_a_db_schema_that_is_not_a_plain_identifier_is_refused(tmp_path: Path, schema: str) -> None:
    message = config_error(tmp_path, merged(VALID_CONFIG, {"db": {"schema": schema}}))

    assert message == (
        "config: db.schema (env DB_SCHEMA or DATABASE_SCHEMA) must be an SQL identifier of at most 63 letters, "
        f"digits and underscores, not starting with a digit, not {schema!r}"
    )


def test_db_schema_defaults_to_sda(tmp_path: Path) -> None:
    assert load(tmp_path, VALID_CONFIG, DB_SCHEMA="").database.schema == "sda"


def test_storage_keys_stay_yaml_only(tmp_path: Path) -> None:
    settings = load(
        tmp_path, with_storage(GOOD_ARCHIVE, GOOD_SYNC), STORAGE_SYNC_POSIX_0_PATH="/env", STORAGE_SYNC_POSIX="/env"
    )

    assert settings.sync.posix == (PosixStorage(path=Path("/sync")),)
