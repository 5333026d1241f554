"""The service's configuration: SDA's YAML file and environment variables, as typed settings."""

from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.loader import env_name, load_settings
from bpsync_dagster.configuration.logs import start_logging
from bpsync_dagster.configuration.settings import (
    AuditSettings,
    BrokerSettings,
    CopySettings,
    Crypt4ghSettings,
    DatabaseSettings,
    PosixStorage,
    RemoteApiSettings,
    S3Storage,
    SensorSettings,
    Settings,
    StorageSettings,
)

__all__ = [
    "AuditSettings",
    "BrokerSettings",
    "ConfigError",
    "CopySettings",
    "Crypt4ghSettings",
    "DatabaseSettings",
    "PosixStorage",
    "RemoteApiSettings",
    "S3Storage",
    "SensorSettings",
    "Settings",
    "StorageSettings",
    "env_name",
    "load_settings",
    "start_logging",
]
