"""The service's configuration as typed, immutable pydantic models.

Each field names the SDA key(s) it is read from (`Key`, the canonical spelling first) and validates
its value with SDA's rules; a bad value is a problem naming the key as the loader describes it (with
its environment variable), which the loader passes in the validation context. A field's problem is a
pydantic error (type `PROBLEM`), so that validation reports every bad field; a model's cross-field
checks run once its fields are valid and raise `ConfigError` with all their problems. Secrets are
fields with `repr=False`, so printing or logging a settings object never shows them.
"""

import datetime
import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from bpsync_dagster.configuration.cron import is_valid_cron
from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.sizes import parse_data_size

LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CHUNK_SIZE_MIN = 5 * 1024**2
CHUNK_SIZE_MAX = 1024**3
BUFFER_LIMIT_MIN = 16 * 1024**2
BANDWIDTH_LIMIT_MIN = 64 * 1024
# An unquoted PostgreSQL identifier that needs no quoting or truncation.
SQL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
# Validation-context entries the loader sets besides the keys' names: the list validators add the
# configuration's warnings to, and whether an S3 entry is one the service writes to.
WARNINGS = "warnings"
IS_WRITER = "is_writer"
# The pydantic error type a field's `ConfigError` is reported as, its message in the context as `problem`.
PROBLEM = "config_problem"


@dataclass(frozen=True, init=False)
class Key:
    """The SDA key(s) a field is read from, the canonical spelling first."""

    spellings: tuple[str, ...]

    def __init__(self, *spellings: str) -> None:
        object.__setattr__(self, "spellings", spellings)


def _key(info: ValidationInfo, field_name: str | None = None) -> str:
    """How an error names the field: its key as the loader describes it, else the field name."""
    name = field_name or info.field_name or ""
    context = info.context or {}
    return str(context.get(name, name))


def _warn(info: ValidationInfo, warning: str) -> None:
    warnings = (info.context or {}).get(WARNINGS)
    if warnings is not None:
        warnings.append(warning)


def _reported(validate: Callable[[Any, ValidationInfo], Any]) -> Callable[[Any, ValidationInfo], Any]:
    """`validate` with its `ConfigError` turned into a pydantic error, so that the model's other fields
    are still validated and every bad field is reported at once."""

    @functools.wraps(validate)
    def reported(value: Any, info: ValidationInfo) -> Any:
        try:
            return validate(value, info)
        except ConfigError as error:
            raise PydanticCustomError(PROBLEM, "{problem}", {"problem": error.problems[0]}) from None

    return reported


def _validator(convert: Callable[[Any, str], Any]) -> BeforeValidator:
    """A before-validator that converts as SDA does, `None` (an optional unset value) left as it is."""
    return BeforeValidator(_reported(lambda value, info: value if value is None else convert(value, _key(info))))


def _check(validate: Callable[[Any, ValidationInfo], Any]) -> AfterValidator:
    """An after-validator whose `ConfigError` is reported beside the other fields' problems."""
    return AfterValidator(_reported(validate))


def parse_boolean(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}")


def integer(minimum: int = 0, maximum: int | None = None) -> BeforeValidator:
    def convert(value: object, key: str) -> int:
        try:
            number = int(str(value).strip())
        except ValueError as error:
            raise ConfigError(f"{key} must be an integer, not {value!r}") from error
        if number < minimum or (maximum is not None and number > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ConfigError(f"{key} must be {bounds}, not {number}")
        return number

    return _validator(convert)


def choice(*allowed: str) -> BeforeValidator:
    def convert(value: object, key: str) -> str:
        chosen = str(value).lower()
        if chosen not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, not {chosen!r}")
        return chosen

    return _validator(convert)


TEXT = _validator(lambda value, _name: str(value))
PATH = _validator(lambda value, _name: Path(str(value)))
BOOLEAN = _validator(parse_boolean)
SIZE = _validator(parse_data_size)

Text = Annotated[str, TEXT]
OptionalPath = Annotated[Path | None, PATH]
Flag = Annotated[bool, BOOLEAN]
Size = Annotated[int, SIZE]
Port = Annotated[int, integer(1, 65535)]
Count = Annotated[int, integer()]


class _Positional(type(BaseModel)):  # type: ignore[misc]
    """Lets a model be built with its fields given by position too, in their order, as the dataclasses
    the settings were. (Not an `__init__`: pydantic would call it in `model_validate`, without the
    context that names the keys.)"""

    def __call__(cls, *values: Any, **fields: Any) -> Any:
        return super().__call__(**dict(zip(cls.model_fields, values, strict=False)), **fields)


class _Settings(BaseModel, metaclass=_Positional):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _remote_host(host: str, info: ValidationInfo) -> str:
    """Refused when it holds credentials (they would reach logs and run metadata with the URL); a
    warning when Basic auth would cross the network in clear text (http to another host than this
    one: a TLS proxy beside the service may listen on the loopback)."""
    key = _key(info)
    try:
        parts = urlsplit(host if "://" in host else f"https://{host}")
    except ValueError as error:
        raise ConfigError(f"{key} is not a URL: {error}") from error
    if "@" in parts.netloc:
        raise ConfigError(
            f"{key} holds credentials (user:password@ before the host): set sync.remote.user and "
            "sync.remote.password instead"
        )
    if parts.scheme.lower() == "http" and not _is_loopback(parts.hostname or ""):
        _warn(
            info,
            f"config: {key} is http: the password of sync.remote.user goes to the remote in clear text "
            "(Basic auth); use https",
        )
    return host


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class RemoteApiSettings(_Settings):
    """The receiving node's sync API."""

    host: Annotated[Text, Key("sync.remote.host"), _check(_remote_host)]
    port: Annotated[int | None, Key("sync.remote.port", "sync.remote.post"), integer(1, 65535)] = None
    user: Annotated[Text, Key("sync.remote.user")]
    password: Annotated[Text, Key("sync.remote.password")] = Field(repr=False)
    ca_cert: Annotated[OptionalPath, Key("sync.remote.caCert")] = None
    # At most 30 s, so that five attempts and their back-off stay within five minutes.
    read_timeout_seconds: Annotated[int, Key("sync.remote.readTimeout"), integer(1, 30)] = 30


class Crypt4ghSettings(_Settings):
    """This node's private key and the receiving node's public key."""

    private_key_path: Annotated[Path, PATH, Key("c4gh.filePath")]
    receiver_public_key_path: Annotated[Path, PATH, Key("c4gh.syncPubKeyPath")]
    passphrase: Annotated[Text, Key("c4gh.passphrase")] = Field(repr=False)


class BrokerSettings(_Settings):
    """RabbitMQ connection and the queue or stream of dataset mappings; a client certificate and key
    are required when `ssl` and `verify_peer` are both on."""

    host: Annotated[Text, Key("broker.host")]
    port: Annotated[Port, Key("broker.port")]
    user: Annotated[Text, Key("broker.user")]
    password: Annotated[Text, Key("broker.password")] = Field(repr=False)
    queue: Annotated[Text, Key("broker.queue")]
    vhost: Annotated[Text, Key("broker.vhost")] = "/"
    exchange: Annotated[Text, Key("broker.exchange")] = ""
    prefetch_count: Annotated[int, Key("broker.prefetchCount", "broker.prefetch_count"), integer(1)] = 2
    ssl: Annotated[Flag, Key("broker.ssl")] = False
    ca_cert: Annotated[OptionalPath, Key("broker.caCert", "broker.ca_cert")] = None
    server_name: Annotated[Text, Key("broker.serverName")] = ""
    verify_peer: Annotated[Flag, Key("broker.verifyPeer")] = False
    client_cert: Annotated[OptionalPath, Key("broker.clientCert", "broker.client_cert")] = None
    client_key: Annotated[OptionalPath, Key("broker.clientKey", "broker.client_key")] = None

    @model_validator(mode="after")
    def _client_certificate(self, info: ValidationInfo) -> "BrokerSettings":
        if self.ssl and self.verify_peer:
            _raise(_missing(self, info, "client_cert", "client_key"))
        return self


def _sql_identifier(value: str, info: ValidationInfo) -> str:
    if not SQL_IDENTIFIER.fullmatch(value):
        raise ConfigError(
            f"{_key(info)} must be an SQL identifier of at most 63 letters, digits and underscores, "
            f"not starting with a digit, not {value!r}"
        )
    return value


class DatabaseSettings(_Settings):
    """The SDA database, read only; `schema` is the search path its tables are found in. A CA
    certificate is required unless `sslmode` is disable, a client certificate and key with verify-full."""

    host: Annotated[Text, Key("db.host", "database.host")]
    port: Annotated[Port, Key("db.port", "database.port")] = 5432
    user: Annotated[Text, Key("db.user", "database.user")]
    password: Annotated[Text, Key("db.password", "database.password")] = Field(default="", repr=False)
    database: Annotated[Text, Key("db.database", "database.name")] = "sda"
    schema_: Annotated[Text, Key("db.schema", "database.schema"), _check(_sql_identifier)] = Field(
        default="sda", alias="schema"
    )
    sslmode: Annotated[str, Key("db.sslmode", "database.ssl_mode"), choice(*SSL_MODES)] = "verify-full"
    ca_cert: Annotated[OptionalPath, Key("db.cacert", "database.ca_cert")] = None
    client_cert: Annotated[OptionalPath, Key("db.clientcert", "database.client_cert")] = None
    client_key: Annotated[OptionalPath, Key("db.clientkey", "database.client_key")] = None

    model_config = ConfigDict(populate_by_name=True)

    @property
    def schema(self) -> str:  # type: ignore[override]
        return self.schema_

    @model_validator(mode="after")
    def _certificates(self, info: ValidationInfo) -> "DatabaseSettings":
        problems: list[str] = []
        if self.sslmode != "disable":
            problems += _missing(self, info, "ca_cert")
        if self.sslmode == "verify-full":
            problems += _missing(self, info, "client_cert", "client_key")
        _raise(problems)
        return self


def _missing(settings: BaseModel, info: ValidationInfo, *fields: str) -> list[str]:
    """A problem for each of `fields` that is unset."""
    return [f"{_key(info, name)} is required" for name in fields if getattr(settings, name) is None]


def _raise(problems: list[str]) -> None:
    """A model's cross-field problems, all in one `ConfigError`."""
    if problems:
        raise ConfigError(*problems)


def _absolute(path: Path, info: ValidationInfo) -> Path:
    if not path.is_absolute():
        raise ConfigError(f"{_key(info)} must be an absolute path, not {str(path)!r}")
    return path


class PosixStorage(_Settings):
    """A directory of a storage; an archived file's `archive_location` is its `path`."""

    path: Annotated[Path, PATH, Key("path"), _check(_absolute)]
    max_objects: Annotated[Count, Key("max_objects")] = 0
    max_size: Annotated[Size, Key("max_size")] = 0
    writer_disabled: Annotated[Flag, Key("writer_disabled")] = False


class S3Storage(_Settings):
    """An S3 endpoint of a storage, always addressed path-style. A writer's entry (in `storage.sync`,
    not disabled) needs a `bucket_prefix`: the loader says so in the context as `IS_WRITER`."""

    endpoint: Annotated[Text, Key("endpoint")]
    access_key: Annotated[Text, Key("access_key")] = Field(repr=False)
    secret_key: Annotated[Text, Key("secret_key")] = Field(repr=False)
    region: Annotated[Text, Key("region")] = "us-east-1"
    ca_cert: Annotated[OptionalPath, Key("ca_cert")] = None
    disable_https: Annotated[Flag, Key("disable_https")] = False
    chunk_size: Annotated[Size, Key("chunk_size")] = 50 * 1024 * 1024
    bucket_prefix: Annotated[Text, Key("bucket_prefix")] = ""
    max_buckets: Annotated[Count, Key("max_buckets"), AfterValidator(lambda count: count or 1)] = 1
    max_objects: Annotated[Count, Key("max_objects")] = 0
    max_size: Annotated[Size, Key("max_size")] = 0
    writer_disabled: Annotated[Flag, Key("writer_disabled")] = False

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> "S3Storage":
        endpoint, disable_https = _key(info, "endpoint"), _key(info, "disable_https")
        problems: list[str] = []
        if self.endpoint.startswith("http:") and not self.disable_https:
            problems.append(f"{endpoint} is http: but {disable_https} is not true")
        if self.endpoint.startswith("https:") and self.disable_https:
            problems.append(f"{endpoint} is https: but {disable_https} is true")
        if not CHUNK_SIZE_MIN <= self.chunk_size <= CHUNK_SIZE_MAX:
            problems.append(f"{_key(info, 'chunk_size')} must be between 5MB and 1GB, not {self.chunk_size} bytes")
        if (info.context or {}).get(IS_WRITER) and not self.writer_disabled and not self.bucket_prefix:
            problems.append(f"{_key(info, 'bucket_prefix')} is required")
        _raise(problems)
        if self.endpoint.endswith("/"):
            return self.model_copy(update={"endpoint": self.endpoint.rstrip("/")})
        return self

    @property
    def endpoint_url(self) -> str:
        """The endpoint with its scheme, which SDA lets the config leave out."""
        if self.endpoint.startswith(("http://", "https://")):
            return self.endpoint
        return ("http://" if self.disable_https else "https://") + self.endpoint


class StorageSettings(_Settings):
    """One named storage (archive or sync): its S3 and POSIX entries in priority order."""

    name: str
    s3: tuple[S3Storage, ...] = ()
    posix: tuple[PosixStorage, ...] = ()

    @property
    def entries(self) -> tuple[S3Storage | PosixStorage, ...]:
        return (*self.s3, *self.posix)


class SchemaSettings(_Settings):
    """Which dataset-mapping schema messages are validated against."""

    type: Annotated[Text, Key("schema.type")] = "isolated"
    path: Annotated[OptionalPath, Key("schema.path")] = None


def _stream_start(value: str, info: ValidationInfo) -> str:
    start = value.strip()
    if start.lower() in ("first", "next"):
        return start.lower()
    if not start.isdigit():
        try:
            datetime.datetime.fromisoformat(start)
        except ValueError as error:
            raise ConfigError(
                f"{_key(info)} must be first, next, an offset or an ISO timestamp, not {start!r}"
            ) from error
    return start


class SensorSettings(_Settings):
    """How the mapping sensor reads `broker.queue`."""

    interval_seconds: Annotated[int, Key("sync.sensor.interval"), integer(1, 3600)] = 1
    batch_size: Annotated[int, Key("sync.sensor.batchSize"), integer(1, 5000)] = 50
    queue_type: Annotated[str, Key("sync.sensor.queueType"), choice("auto", "stream", "classic")] = "auto"
    stream_start: Annotated[Text, Key("sync.sensor.streamStart"), _check(_stream_start)] = Field(
        default="next", validate_default=True
    )


def _cron(value: str, info: ValidationInfo) -> str:
    cron = value.strip()
    if not is_valid_cron(cron):
        raise ConfigError(f"{_key(info)} must be a cron expression, not {cron!r}")
    return cron


class AuditSettings(_Settings):
    """When the scheduled `audit_sync` runs and how thorough it is."""

    cron: Annotated[Text, Key("sync.audit.cron"), _check(_cron)] = "0 3 * * *"
    verify_checksums: Annotated[Flag, Key("sync.audit.verifyChecksums")] = False
    resync_drifted: Annotated[Flag, Key("sync.audit.resyncDrifted")] = False


def _buffer_limit(limit: int, info: ValidationInfo) -> int:
    if limit < BUFFER_LIMIT_MIN:
        raise ConfigError(f"{_key(info)} must be at least 16MB, not {limit} bytes")
    return limit


def bandwidth_limit_problem(limit: int) -> str | None:
    """Why `limit` (bytes per second) cannot cap a sync, or None: 0 (no limit) or at least 64KB."""
    if 0 < limit < BANDWIDTH_LIMIT_MIN:
        return f"must be 0 (no limit) or at least 64KB per second, not {limit} bytes"
    return None


def _bandwidth_limit(limit: int, info: ValidationInfo) -> int:
    problem = bandwidth_limit_problem(limit)
    if problem:
        raise ConfigError(f"{_key(info)} {problem}")
    return limit


class CopySettings(_Settings):
    """How a sync copies: `buffer_limit` bounds the bytes its copy buffers hold at once,
    `bandwidth_limit` the bytes per second it writes to sync storage (0: no limit)."""

    buffer_limit: Annotated[Size, Key("sync.copy.bufferLimit"), _check(_buffer_limit)] = 512 * 1024 * 1024
    bandwidth_limit: Annotated[Size, Key("sync.copy.bandwidthLimit"), _check(_bandwidth_limit)] = 0


class LogSettings(_Settings):
    level: Annotated[str, Key("log.level"), choice(*LOG_LEVELS)] = "info"
    format: Annotated[str, Key("log.format"), choice("text", "json")] = "text"


class Settings(_Settings):
    """Everything the service is configured with, validated."""

    center_prefix: Annotated[Text, Key("sync.centerPrefix")]
    remote: RemoteApiSettings
    crypt4gh: Crypt4ghSettings
    broker: BrokerSettings
    database: DatabaseSettings
    archive: StorageSettings
    sync: StorageSettings
    schema_: SchemaSettings = Field(default=SchemaSettings(), alias="schema")
    sensor: SensorSettings = SensorSettings()
    audit: AuditSettings = AuditSettings()
    copy_: CopySettings = Field(default=CopySettings(), alias="copy")
    log: LogSettings = LogSettings()
    warnings: tuple[str, ...] = ()

    model_config = ConfigDict(populate_by_name=True)

    @property
    def schema(self) -> SchemaSettings:  # type: ignore[override]
        return self.schema_

    @property
    def copy(self) -> CopySettings:  # type: ignore[override]
        return self.copy_
