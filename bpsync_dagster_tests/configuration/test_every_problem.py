"""A configuration with several mistakes is reported in one run: every missing or invalid key on a
line of its own, naming the key and its environment variable, under a line saying where the
configuration was read."""

from pathlib import Path

import pytest
import yaml

from bpsync_dagster.configuration import ConfigError, load_settings
from bpsync_dagster.configuration.config_file import DEFAULT_CONFIG_FILE
from bpsync_dagster.configuration.loader import config_location
from bpsync_dagster_tests.configuration.test_loader import REQUIRED_KEYS, config, s3_entry, with_storage

THREE_MISTAKES = config(**{"sync.centerPrefix": None, "broker.port": "five", "log.level": "loud"})


def problems_of(tmp_path: Path, tree: object, **env: str) -> ConfigError:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONFIG_FILE": str(path), **env})
    return caught.value


def test_three_mistakes_are_reported_in_one_run(tmp_path: Path) -> None:
    error = problems_of(tmp_path, THREE_MISTAKES)

    assert str(error).splitlines() == [
        f"config: 3 problems in {tmp_path / 'config.yaml'} and the environment:",
        "  sync.centerPrefix (env SYNC_CENTERPREFIX) is required",
        "  broker.port (env BROKER_PORT) must be an integer, not 'five'",
        "  log.level (env LOG_LEVEL) must be one of trace, debug, info, warn, warning, error, fatal, panic, not 'loud'",
    ]
    assert len(error.problems) == 3


def test_the_environment_s_mistakes_are_reported_with_the_file_s(tmp_path: Path) -> None:
    error = problems_of(tmp_path, THREE_MISTAKES, SYNC_SENSOR_BATCHSIZE="0", DB_PORT="")

    assert error.problems[2] == "sync.sensor.batchSize (env SYNC_SENSOR_BATCHSIZE) must be between 1 and 5000, not 0"
    assert len(error.problems) == 4


def test_every_bad_field_of_one_section_is_reported(tmp_path: Path) -> None:
    tree = config(**{"db.port": "x", "db.sslmode": "sometimes", "db.schema": "9lives", "db.user": None})

    assert problems_of(tmp_path, tree).problems == (
        "db.user (env DB_USER or DATABASE_USER) is required",
        "db.port (env DB_PORT or DATABASE_PORT) must be an integer, not 'x'",
        "db.schema (env DB_SCHEMA or DATABASE_SCHEMA) must be an SQL identifier of at most 63 letters, digits and "
        "underscores, not starting with a digit, not '9lives'",
        "db.sslmode (env DB_SSLMODE or DATABASE_SSL_MODE) must be one of disable, allow, prefer, require, "
        "verify-ca, verify-full, not 'sometimes'",
    )


def test_every_missing_certificate_is_reported_once_the_fields_it_depends_on_are_valid(tmp_path: Path) -> None:
    tree = config(**{"db.cacert": None, "db.clientcert": None, "db.clientkey": None, "broker.clientKey": None})

    assert problems_of(tmp_path, tree).problems == (
        "broker.clientKey (env BROKER_CLIENTKEY or BROKER_CLIENT_KEY) is required",
        "db.cacert (env DB_CACERT or DATABASE_CA_CERT) is required",
        "db.clientcert (env DB_CLIENTCERT or DATABASE_CLIENT_CERT) is required",
        "db.clientkey (env DB_CLIENTKEY or DATABASE_CLIENT_KEY) is required",
    )


def test_every_storage_entry_s_problems_are_reported(tmp_path: Path) -> None:
    tree = with_storage(
        {"posix": [{"path": "relative"}], "s3": [s3_entry(endpoint="http://s3:9000", chunk_size="1MB")]},
        {"s3": [s3_entry(bucket_prefix=None, max_buckets="many")], "posix": [{"max_objects": 3}]},
    )

    assert problems_of(tmp_path, tree).problems == (
        "storage.archive.s3[0].endpoint is http: but storage.archive.s3[0].disable_https is not true",
        "storage.archive.s3[0].chunk_size must be between 5MB and 1GB, not 1048576 bytes",
        "storage.archive.posix[0].path must be an absolute path, not 'relative'",
        "storage.sync.s3[0].max_buckets must be an integer, not 'many'",
        "storage.sync.posix[0].path is required",
    )


def test_a_problem_of_the_whole_storage_section_is_reported_once(tmp_path: Path) -> None:
    tree = config(**{"storage": "everywhere", "log.format": "xml"})

    assert problems_of(tmp_path, tree).problems == (
        "storage must be a mapping of storage names",
        "log.format (env LOG_FORMAT) must be one of text, json, not 'xml'",
    )


def test_without_a_file_the_error_says_only_the_environment_was_read() -> None:
    """Storage is YAML only, so without a file there are always its two problems at least."""
    if DEFAULT_CONFIG_FILE.exists():
        pytest.skip(f"{DEFAULT_CONFIG_FILE} exists on this machine")
    where = (
        f"the environment only: there is no file {DEFAULT_CONFIG_FILE} (CONFIG_FILE, CONFIGFILE or CONFIGPATH may "
        "name another)"
    )
    assert config_location({}) == where

    environ = {env: "5672" for env in REQUIRED_KEYS.values()}
    with pytest.raises(ConfigError) as caught:
        load_settings({**environ, "DB_SSLMODE": "disable"})

    assert str(caught.value).splitlines() == [
        f"config: 2 problems in {where}:",
        "  storage.archive needs at least one s3 or posix entry",
        "  storage.sync needs at least one s3 or posix entry to write to",
    ]


def test_a_file_that_exists_is_named_with_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("{}\n")

    assert config_location({"CONFIG_FILE": str(path)}) == f"{path} and the environment"
