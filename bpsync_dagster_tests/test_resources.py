"""The resources: one settings resource reads the configuration when it is set up, the others take it as a
nested resource and build their clients from it; nothing is process-global, and reading the
configuration configures no logging."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from bpsync_dagster.configuration import ConfigError, Settings
from bpsync_dagster.resources import (
    BrokerResource,
    RemoteSyncApiResource,
    SdaDatabaseResource,
    ServiceSettingsResource,
    service_resources,
)
from bpsync_dagster_tests.configuration.test_loader import EXPECTED, VALID_CONFIG, config


def other_node() -> Settings:
    """Settings of a second node, different from `EXPECTED` in every client the test looks at."""
    return EXPECTED.model_copy(
        update={
            "center_prefix": "OTHER",
            "database": EXPECTED.database.model_copy(update={"host": "db.other.example.org"}),
            "remote": EXPECTED.remote.model_copy(update={"host": "https://remote.other.example.org"}),
            "broker": EXPECTED.broker.model_copy(update={"queue": "other_mappings"}),
        }
    )


@pytest.fixture
def no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The environment names a configuration file that does not exist: reading it would fail."""
    monkeypatch.setenv("CONFIG_FILE", str(tmp_path / "absent.yaml"))


def test_resources_build_their_clients_from_the_settings_they_are_given(no_configuration: None) -> None:
    first = service_resources(ServiceSettingsResource.given(EXPECTED))
    second = service_resources(ServiceSettingsResource.given(other_node()))

    for resources, settings in ((first, EXPECTED), (second, other_node())):
        database = resources["sda_database"]
        assert isinstance(database, SdaDatabaseResource)
        assert database.client().describe() == (
            f"{settings.database.user}@{settings.database.host}:{settings.database.port}/{settings.database.database}"
        )
        remote = resources["remote_api"]
        assert isinstance(remote, RemoteSyncApiResource)
        assert remote.client().url.startswith(settings.remote.host)
        broker = resources["broker"]
        assert isinstance(broker, BrokerResource)
        assert broker.service_settings.settings.broker.queue == settings.broker.queue


def test_a_job_runs_on_the_settings_its_resources_are_given(no_configuration: None) -> None:
    seen: list[tuple[str, str]] = []

    @dg.op
    def read_settings(sda_database: SdaDatabaseResource, broker: BrokerResource) -> None:
        seen.append(
            (sda_database.service_settings.settings.center_prefix, broker.service_settings.settings.broker.queue)
        )

    @dg.job
    def settings_job() -> None:
        read_settings()

    for settings in (EXPECTED, other_node()):
        resources = service_resources(ServiceSettingsResource.given(settings))
        assert settings_job.execute_in_process(resources=resources).success

    assert seen == [("SYNC", "mapping_stream"), ("OTHER", "other_mappings")]


def test_the_settings_resource_reads_the_configuration_when_it_is_set_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(VALID_CONFIG))
    resource = ServiceSettingsResource()
    monkeypatch.setenv("CONFIG_FILE", str(path))
    monkeypatch.setenv("SYNC_CENTERPREFIX", "FROMENV")

    with dg.build_resources({"service_settings": resource}) as built:
        assert built.service_settings.settings == EXPECTED.model_copy(update={"center_prefix": "FROMENV"})


def test_a_bad_key_fails_the_settings_resource_setup_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(**{"broker.port": "amqp"})))
    monkeypatch.setenv("CONFIG_FILE", str(path))

    with pytest.raises(dg.DagsterResourceFunctionError) as caught:
        with dg.build_resources({"broker": BrokerResource(service_settings=ServiceSettingsResource())}):
            pass

    error = caught.value.user_exception
    assert isinstance(error, ConfigError)
    assert str(error) == "config: broker.port (env BROKER_PORT) must be an integer, not 'amqp'"


def test_no_resource_has_a_config_field_that_could_hold_a_secret() -> None:
    for key, resource in service_resources(ServiceSettingsResource()).items():
        fields = set(type(resource).model_fields) - {"service_settings"}
        assert fields <= {"connect_timeout_seconds"}, key


LOGGING_PROBE = """
import json, logging, sys
from bpsync_dagster import definitions, resources
from bpsync_dagster.cli import main
from bpsync_dagster.configuration import load_settings, start_logging
import dagster as dg

def service_logger():
    logger = logging.getLogger("bpsync_dagster")
    return {"handlers": len(logger.handlers), "level": logger.level}

after_import = service_logger()
settings = load_settings()
with dg.build_resources({"settings": resources.ServiceSettingsResource()}) as built:
    assert built.settings.settings == settings
after_load = service_logger()
print("no output before start_logging", file=sys.stderr, flush=True)
start_logging(settings)
print(json.dumps({"after_import": after_import, "after_load": after_load, "after_start": service_logger()}))
"""


def test_importing_and_reading_the_configuration_configure_no_logging(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(**{"sync.remote.host": "http://remote.example.org"})))

    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOGGING_PROBE],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "CONFIG_FILE": str(path)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    states = json.loads(result.stdout)
    assert states["after_import"] == states["after_load"] == {"handlers": 0, "level": 0}
    assert states["after_start"] == {"handlers": 1, "level": 10}
    before, after = result.stderr.split("no output before start_logging\n")
    assert before == ""
    warning = json.loads(after)
    assert warning["logger"] == "bpsync_dagster.configuration"
    assert warning["message"].startswith("config: sync.remote.host (env SYNC_REMOTE_HOST) is http")
