"""The service's configuration as typed, immutable objects.

Secrets are fields with `repr=False`, so printing or logging a settings object never shows them.
"""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RemoteApiSettings:
    """The receiving node's sync API."""

    host: str
    port: int | None
    user: str
    password: str = field(repr=False)
    ca_cert: Path | None = None
    read_timeout_seconds: int = 30


@dataclass(frozen=True)
class Crypt4ghSettings:
    """This node's private key and the receiving node's public key."""

    private_key_path: Path
    receiver_public_key_path: Path
    passphrase: str = field(repr=False)


@dataclass(frozen=True)
class BrokerSettings:
    """RabbitMQ connection and the queue or stream of dataset mappings."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    queue: str = ""
    vhost: str = "/"
    exchange: str = ""
    prefetch_count: int = 2
    ssl: bool = False
    ca_cert: Path | None = None
    server_name: str = ""
    verify_peer: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class DatabaseSettings:
    """The SDA database, read only; `schema` is the search path its tables are found in."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = "sda"
    schema: str = "sda"
    sslmode: str = "verify-full"
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True)
class PosixStorage:
    """A directory of a storage; an archived file's `archive_location` is its `path`."""

    path: Path
    max_objects: int = 0
    max_size: int = 0
    writer_disabled: bool = False


@dataclass(frozen=True)
class S3Storage:
    """An S3 endpoint of a storage, always addressed path-style."""

    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    ca_cert: Path | None = None
    disable_https: bool = False
    chunk_size: int = 50 * 1024 * 1024
    bucket_prefix: str = ""
    max_buckets: int = 1
    max_objects: int = 0
    max_size: int = 0
    writer_disabled: bool = False

    @property
    def endpoint_url(self) -> str:
        """The endpoint with its scheme, which SDA lets the config leave out."""
        if self.endpoint.startswith(("http://", "https://")):
            return self.endpoint
        return ("http://" if self.disable_https else "https://") + self.endpoint


@dataclass(frozen=True)
class StorageSettings:
    """One named storage (archive or sync): its S3 and POSIX entries in priority order."""

    name: str
    s3: tuple[S3Storage, ...] = ()
    posix: tuple[PosixStorage, ...] = ()

    @property
    def entries(self) -> tuple[S3Storage | PosixStorage, ...]:
        return (*self.s3, *self.posix)


@dataclass(frozen=True)
class SchemaSettings:
    """Which dataset-mapping schema messages are validated against."""

    type: str = "isolated"
    path: Path | None = None


@dataclass(frozen=True)
class SensorSettings:
    """How the mapping sensor reads `broker.queue`."""

    interval_seconds: int = 1
    batch_size: int = 50
    queue_type: str = "auto"
    stream_start: str = "next"


@dataclass(frozen=True)
class AuditSettings:
    """When the scheduled `audit_sync` runs and how thorough it is."""

    cron: str = "0 3 * * *"
    verify_checksums: bool = False
    resync_drifted: bool = False


@dataclass(frozen=True)
class CopySettings:
    """How a sync copies: `buffer_limit` bounds the bytes its copy buffers hold at once."""

    buffer_limit: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with, validated."""

    center_prefix: str
    remote: RemoteApiSettings
    crypt4gh: Crypt4ghSettings
    broker: BrokerSettings
    database: DatabaseSettings
    archive: StorageSettings
    sync: StorageSettings
    schema: SchemaSettings = SchemaSettings()
    sensor: SensorSettings = SensorSettings()
    audit: AuditSettings = AuditSettings()
    copy: CopySettings = CopySettings()
    log: LogSettings = LogSettings()
    warnings: tuple[str, ...] = ()
