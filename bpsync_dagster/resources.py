"""Dagster resources: typed wrappers that build the real clients from the service configuration.

None of them carries a secret as a field: the configuration (YAML file and environment) is read in
the process that uses it, so nothing Dagster stores or shows holds a password or key.
"""

import logging

import dagster as dg

from bpsync_dagster.broker.client import BrokerSession
from bpsync_dagster.c4gh import NodeKeys, load_node_keys
from bpsync_dagster.configuration import service_settings
from bpsync_dagster.configuration.schemas import file_sync_schema_file, load_schema
from bpsync_dagster.remote_api import RemoteSyncApi
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.storage import ArchiveStorage, SyncStorage

logger = logging.getLogger(__name__)


class SdaDatabaseResource(dg.ConfigurableResource):
    """The SDA database (`db.*` / `database.*` keys), read only."""

    connect_timeout_seconds: int = 10

    def client(self) -> SdaDatabase:
        return SdaDatabase(service_settings().database, self.connect_timeout_seconds)


class ArchiveStorageResource(dg.ConfigurableResource):
    """The archive storage (`storage.archive`), where archived bodies are read."""

    def client(self) -> ArchiveStorage:
        return ArchiveStorage(service_settings().archive)


class SyncStorageResource(dg.ConfigurableResource):
    """The sync storage (`storage.sync`), where synced objects are written."""

    def client(self) -> SyncStorage:
        settings = service_settings()
        return SyncStorage(settings.sync, settings.copy.buffer_limit)


class Crypt4ghKeysResource(dg.ConfigurableResource):
    """The node's private key and the receiver's public key (`c4gh.*` keys)."""

    def node_keys(self) -> NodeKeys:
        """The keys, with a warning in the log (and so in the run's event log) for an unprotected key file."""
        keys = load_node_keys(service_settings().crypt4gh)
        for warning in keys.warnings:
            logger.warning(warning)
        return keys


class RemoteSyncApiResource(dg.ConfigurableResource):
    """The receiving node's sync API (`sync.remote.*` keys)."""

    connect_timeout_seconds: float = 10

    def client(self) -> RemoteSyncApi:
        remote = service_settings().remote
        return RemoteSyncApi(remote, self.connect_timeout_seconds, remote.read_timeout_seconds)

    def manifest_schema(self) -> dict[str, object]:
        return load_schema(file_sync_schema_file(service_settings().schema))


class BrokerResource(dg.ConfigurableResource):
    """RabbitMQ (`broker.*` keys): short sessions that read `broker.queue` and publish confirmed info-errors."""

    def session(self) -> BrokerSession:
        return BrokerSession(service_settings().broker)


RESOURCES = {
    "broker": BrokerResource(),
    "sda_database": SdaDatabaseResource(),
    "archive_storage": ArchiveStorageResource(),
    "sync_storage": SyncStorageResource(),
    "crypt4gh_keys": Crypt4ghKeysResource(),
    "remote_api": RemoteSyncApiResource(),
}
