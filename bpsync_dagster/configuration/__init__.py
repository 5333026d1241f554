"""The service's configuration: SDA's YAML file and environment variables, as typed settings."""

import functools
import logging

from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.loader import env_name, load_settings
from bpsync_dagster.configuration.logs import configure_logging
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
    "service_settings",
]

logger = logging.getLogger(__name__)


@functools.cache
def service_settings() -> Settings:
    """The process's settings, read from the environment and the configuration file on first use."""
    settings = load_settings()
    configure_logging(settings.log)
    for warning in settings.warnings:
        logger.warning(warning)
    return settings
