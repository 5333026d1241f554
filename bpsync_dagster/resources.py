"""Dagster resources: the service's settings, and the real clients built from them.

`ServiceSettingsResource` reads and validates the configuration (YAML file and environment) in the
process that uses it, when the resource is set up; the other resources take it as a nested resource
and build their clients from its settings. No resource has a secret as a field, so nothing Dagster
stores or shows (run config, the UI's resource view) holds a password or key.
"""

import logging

import dagster as dg
from pydantic import PrivateAttr

from bpsync_dagster.broker.client import BrokerSession
from bpsync_dagster.c4gh import NodeKeys, load_node_keys
from bpsync_dagster.configuration import Settings, load_settings
from bpsync_dagster.configuration.schemas import file_sync_schema_file, load_schema
from bpsync_dagster.remote_api import RemoteSyncApi
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.storage import ArchiveStorage, SyncStorage

logger = logging.getLogger(__name__)


class ServiceSettingsResource(dg.ConfigurableResource):
    """The SDA configuration (the file `CONFIG_FILE`, `CONFIGFILE` or `CONFIGPATH` names, or `/config.yaml`,
    with environment overrides), read and validated when the resource is set up for a run, sensor
    tick or schedule tick."""

    _settings: Settings | None = PrivateAttr(default=None)

    def load(self) -> Settings:
        """Read the configuration; a `ConfigError` names every bad key."""
        return load_settings()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = self.load()

    @property
    def settings(self) -> Settings:
        """The validated settings (read now if the resource is used outside Dagster's execution)."""
        if self._settings is None:
            self._settings = self.load()
        return self._settings

    @classmethod
    def given(cls, settings: Settings) -> "ServiceSettingsResource":
        """A settings resource that hands out `settings` instead of reading the configuration: for
        code (tests, tools) that builds its resources itself. Dagster copies a resource from its
        fields when it sets it up, so the settings live on a class of their own, never in config."""
        given = type("GivenServiceSettingsResource", (cls,), {"load": lambda self: settings, "__module__": __name__})
        return given()


class SdaDatabaseResource(dg.ConfigurableResource):
    """The SDA database (`db.*` / `database.*` keys), read only."""

    service_settings: ServiceSettingsResource
    connect_timeout_seconds: int = 10

    def client(self) -> SdaDatabase:
        return SdaDatabase(self.service_settings.settings.database, self.connect_timeout_seconds)


class ArchiveStorageResource(dg.ConfigurableResource):
    """The archive storage (`storage.archive`), where archived bodies are read."""

    service_settings: ServiceSettingsResource

    def client(self) -> ArchiveStorage:
        return ArchiveStorage(self.service_settings.settings.archive)


class SyncStorageResource(dg.ConfigurableResource):
    """The sync storage (`storage.sync`), where synced objects are written."""

    service_settings: ServiceSettingsResource

    def client(self, bandwidth_limit: int | None = None) -> SyncStorage:
        """The sync storage, its writes capped at `bandwidth_limit` bytes per second (0: none) where
        given, else at `sync.copy.bandwidthLimit`."""
        settings = self.service_settings.settings
        limit = settings.copy.bandwidth_limit if bandwidth_limit is None else bandwidth_limit
        return SyncStorage(settings.sync, settings.copy.buffer_limit, limit)


class Crypt4ghKeysResource(dg.ConfigurableResource):
    """The node's private key and the receiver's public key (`c4gh.*` keys)."""

    service_settings: ServiceSettingsResource

    def node_keys(self) -> NodeKeys:
        """The keys, with a warning in the log (and so in the run's event log) for an unprotected key file."""
        keys = load_node_keys(self.service_settings.settings.crypt4gh)
        for warning in keys.warnings:
            logger.warning(warning)
        return keys


class RemoteSyncApiResource(dg.ConfigurableResource):
    """The receiving node's sync API (`sync.remote.*` keys)."""

    service_settings: ServiceSettingsResource
    connect_timeout_seconds: float = 10

    def client(self) -> RemoteSyncApi:
        remote = self.service_settings.settings.remote
        return RemoteSyncApi(remote, self.connect_timeout_seconds, remote.read_timeout_seconds)

    def manifest_schema(self) -> dict[str, object]:
        return load_schema(file_sync_schema_file(self.service_settings.settings.schema))


class BrokerResource(dg.ConfigurableResource):
    """RabbitMQ (`broker.*` keys): short sessions that read `broker.queue` and publish confirmed info-errors."""

    service_settings: ServiceSettingsResource

    def session(self) -> BrokerSession:
        return BrokerSession(self.service_settings.settings.broker)


def service_resources(service_settings: ServiceSettingsResource) -> dict[str, dg.ConfigurableResource]:
    """Every resource of the service, by the key ops and sensors ask for, built on `service_settings`."""
    return {
        "broker": BrokerResource(service_settings=service_settings),
        "sda_database": SdaDatabaseResource(service_settings=service_settings),
        "archive_storage": ArchiveStorageResource(service_settings=service_settings),
        "sync_storage": SyncStorageResource(service_settings=service_settings),
        "crypt4gh_keys": Crypt4ghKeysResource(service_settings=service_settings),
        "remote_api": RemoteSyncApiResource(service_settings=service_settings),
    }


RESOURCES = service_resources(ServiceSettingsResource())
