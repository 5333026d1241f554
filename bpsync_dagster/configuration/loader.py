"""Read the SDA-compatible configuration: a YAML file plus environment overrides.

A key's environment form is its dotted path upper-cased with `.` turned into `_`; YAML keys are
case-insensitive and may be nested or dotted (see `config_file`); an empty environment variable
counts as unset. Storage is YAML only. A setting may have several spellings (`db.host` and
`database.host`, `broker.caCert` and `broker.ca_cert`): the environment overrides the file whatever
the spelling, and two spellings with different values in the environment, or in the file, are an
error naming both.
"""

import datetime
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from bpsync_dagster.configuration.config_file import ConfigFile, YamlValue, collect, read_config_file, same_value
from bpsync_dagster.configuration.cron import is_valid_cron
from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.settings import (
    AuditSettings,
    BrokerSettings,
    CopySettings,
    Crypt4ghSettings,
    DatabaseSettings,
    LogSettings,
    PosixStorage,
    RemoteApiSettings,
    S3Storage,
    SchemaSettings,
    SensorSettings,
    Settings,
    StorageSettings,
)
from bpsync_dagster.configuration.sizes import parse_data_size

LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
CHUNK_SIZE_MIN = 5 * 1024**2
CHUNK_SIZE_MAX = 1024**3
BUFFER_LIMIT_MIN = 16 * 1024**2
STORAGE_ENTRY_KEYS = frozenset(
    {
        "path",
        "endpoint",
        "access_key",
        "secret_key",
        "region",
        "ca_cert",
        "disable_https",
        "chunk_size",
        "bucket_prefix",
        "max_buckets",
        "max_objects",
        "max_size",
        "writer_disabled",
    }
)
# An unquoted PostgreSQL identifier that needs no quoting or truncation.
SQL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")

T = TypeVar("T")


def env_name(key: str) -> str:
    """`broker.prefetchCount` -> `BROKER_PREFETCHCOUNT`."""
    return key.upper().replace(".", "_")


class _Source:
    """Looks a setting up under each of its spellings (the canonical one first): in the environment
    first, then in the YAML values. Two different values within one of them are an error."""

    def __init__(self, values: Mapping[str, YamlValue], origin: Path, environ: Mapping[str, str] | None) -> None:
        self._values = values
        self._origin = origin
        self._environ = environ

    def describe(self, keys: tuple[str, ...]) -> str:
        if self._environ is None:
            return keys[0]
        envs = " or ".join(dict.fromkeys(env_name(key) for key in keys))
        return f"{keys[0]} (env {envs})"

    def raw(self, keys: tuple[str, ...]) -> object | None:
        environ = self._environ or {}
        from_env = [
            (f"env {name}", environ[name]) for name in dict.fromkeys(env_name(key) for key in keys) if environ.get(name)
        ]
        from_yaml = [
            (f"'{given.spelling}'", given.value)
            for key in dict.fromkeys(key.lower() for key in keys)
            if (given := self._values.get(key)) is not None
        ]
        self._agree(keys[0], from_env, "")
        self._agree(keys[0], from_yaml, f" in {self._origin}")
        chosen = from_env or from_yaml
        return chosen[0][1] if chosen else None

    @staticmethod
    def _agree(key: str, given: list[tuple[str, object]], where: str) -> None:
        for spelling, value in given[1:]:
            if not same_value(given[0][1], value):
                raise ConfigError(f"{key} is set twice with different values{where}: {given[0][0]} and {spelling}")

    def _get(
        self, keys: tuple[str, ...], convert: Callable[[object, str], T], default: T | None, required: bool
    ) -> T | None:
        value = self.raw(keys)
        if value is None:
            if required:
                raise ConfigError(f"{self.describe(keys)} is required")
            return default
        return convert(value, keys[0])

    def text(self, *keys: str, default: str = "", required: bool = False) -> str:
        return self._get(keys, lambda value, _key: str(value), default, required) or default

    def choice(self, *keys: str, choices: Iterable[str], default: str) -> str:
        allowed = tuple(choices)
        value = self.text(*keys, default=default).lower()
        if value not in allowed:
            raise ConfigError(f"{self.describe(keys)} must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def integer(
        self,
        *keys: str,
        default: int | None = None,
        required: bool = False,
        minimum: int = 0,
        maximum: int | None = None,
    ) -> int | None:
        def convert(value: object, key: str) -> int:
            try:
                number = int(str(value).strip())
            except ValueError as error:
                raise ConfigError(f"{self.describe(keys)} must be an integer, not {value!r}") from error
            if number < minimum or (maximum is not None and number > maximum):
                bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
                raise ConfigError(f"{self.describe(keys)} must be {bounds}, not {number}")
            return number

        return self._get(keys, convert, default, required)

    def boolean(self, *keys: str, default: bool = False) -> bool:
        value = self.raw(keys)
        if value is None:
            return default
        return parse_boolean(value, self.describe(keys))

    def path(self, *keys: str, required: bool = False) -> Path | None:
        return self._get(keys, lambda value, _key: Path(str(value)), None, required)


def parse_boolean(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{key} must be true or false, not {value!r}")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration, or raise `ConfigError` naming the first bad key."""
    environ = os.environ if environ is None else environ
    config_file = read_config_file(environ)
    source = _Source(config_file.values, config_file.path, environ)
    center_prefix = source.text("sync.centerPrefix", required=True)
    warnings: list[str] = []
    remote = RemoteApiSettings(
        host=_remote_host(source, warnings),
        port=source.integer("sync.remote.port", "sync.remote.post", minimum=1, maximum=65535),
        user=source.text("sync.remote.user", required=True),
        password=source.text("sync.remote.password", required=True),
        ca_cert=source.path("sync.remote.caCert"),
        # At most 30 s, so that five attempts and their back-off stay within five minutes.
        read_timeout_seconds=_required(source.integer("sync.remote.readTimeout", default=30, minimum=1, maximum=30)),
    )
    crypt4gh = Crypt4ghSettings(
        private_key_path=_required(source.path("c4gh.filePath", required=True)),
        receiver_public_key_path=_required(source.path("c4gh.syncPubKeyPath", required=True)),
        passphrase=source.text("c4gh.passphrase", required=True),
    )
    broker = _broker(source)
    database = _database(source)
    archive = _storage(config_file, "archive", warnings)
    sync = _storage(config_file, "sync", warnings)
    if not archive.entries:
        raise ConfigError("storage.archive needs at least one s3 or posix entry")
    if not any(not entry.writer_disabled for entry in sync.entries):
        raise ConfigError("storage.sync needs at least one s3 or posix entry to write to")
    return Settings(
        center_prefix=center_prefix,
        remote=remote,
        crypt4gh=crypt4gh,
        broker=broker,
        database=database,
        archive=archive,
        sync=sync,
        schema=SchemaSettings(
            type=source.text("schema.type", default="isolated"),
            path=source.path("schema.path"),
        ),
        sensor=_sensor(source),
        audit=_audit(source),
        copy=_copy(source),
        log=LogSettings(
            level=source.choice("log.level", choices=LOG_LEVELS, default="info"),
            format=source.choice("log.format", choices=("text", "json"), default="text"),
        ),
        warnings=tuple(warnings),
    )


def _required(value: T | None) -> T:
    assert value is not None
    return value


def _remote_host(source: _Source, warnings: list[str]) -> str:
    """`sync.remote.host`, refused when it holds credentials (they would reach logs and run metadata
    with the URL); a warning when Basic auth would cross the network in clear text (http to another
    host than this one: a TLS proxy beside the service may listen on the loopback)."""
    host = source.text("sync.remote.host", required=True)
    key = source.describe(("sync.remote.host",))
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
        warnings.append(
            f"config: {key} is http: the password of sync.remote.user goes to the remote in clear text "
            "(Basic auth); use https"
        )
    return host


def _is_loopback(hostname: str) -> bool:
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _broker(source: _Source) -> BrokerSettings:
    ssl = source.boolean("broker.ssl")
    verify_peer = source.boolean("broker.verifyPeer")
    settings = BrokerSettings(
        host=source.text("broker.host", required=True),
        port=_required(source.integer("broker.port", required=True, minimum=1, maximum=65535)),
        user=source.text("broker.user", required=True),
        password=source.text("broker.password", required=True),
        queue=source.text("broker.queue", required=True),
        vhost=source.text("broker.vhost", default="/"),
        exchange=source.text("broker.exchange"),
        prefetch_count=_required(source.integer("broker.prefetchCount", "broker.prefetch_count", default=2, minimum=1)),
        ssl=ssl,
        ca_cert=source.path("broker.caCert", "broker.ca_cert"),
        server_name=source.text("broker.serverName"),
        verify_peer=verify_peer,
        client_cert=source.path("broker.clientCert", "broker.client_cert", required=ssl and verify_peer),
        client_key=source.path("broker.clientKey", "broker.client_key", required=ssl and verify_peer),
    )
    return settings


def _sensor(source: _Source) -> SensorSettings:
    stream_start = source.text("sync.sensor.streamStart", default="next").strip()
    if stream_start.lower() in ("first", "next"):
        stream_start = stream_start.lower()
    elif not stream_start.isdigit():
        try:
            datetime.datetime.fromisoformat(stream_start)
        except ValueError as error:
            raise ConfigError(
                f"{source.describe(('sync.sensor.streamStart',))} must be first, next, an offset or an ISO timestamp, "
                f"not {stream_start!r}"
            ) from error
    return SensorSettings(
        interval_seconds=_required(source.integer("sync.sensor.interval", default=1, minimum=1, maximum=3600)),
        batch_size=_required(source.integer("sync.sensor.batchSize", default=50, minimum=1, maximum=5000)),
        queue_type=source.choice("sync.sensor.queueType", choices=("auto", "stream", "classic"), default="auto"),
        stream_start=stream_start,
    )


def _audit(source: _Source) -> AuditSettings:
    cron = source.text("sync.audit.cron", default=AuditSettings.cron).strip()
    if not is_valid_cron(cron):
        raise ConfigError(f"{source.describe(('sync.audit.cron',))} must be a cron expression, not {cron!r}")
    return AuditSettings(
        cron=cron,
        verify_checksums=source.boolean("sync.audit.verifyChecksums"),
        resync_drifted=source.boolean("sync.audit.resyncDrifted"),
    )


def _copy(source: _Source) -> CopySettings:
    key = "sync.copy.bufferLimit"
    raw = source.raw((key,))
    limit = CopySettings.buffer_limit if raw is None else parse_data_size(raw, source.describe((key,)))
    if limit < BUFFER_LIMIT_MIN:
        raise ConfigError(f"{source.describe((key,))} must be at least 16MB, not {limit} bytes")
    return CopySettings(buffer_limit=limit)


def _database(source: _Source) -> DatabaseSettings:
    sslmode = source.choice("db.sslmode", "database.ssl_mode", choices=SSL_MODES, default="verify-full")
    needs_ca = sslmode != "disable"
    needs_client = sslmode == "verify-full"
    return DatabaseSettings(
        host=source.text("db.host", "database.host", required=True),
        port=_required(source.integer("db.port", "database.port", default=5432, minimum=1, maximum=65535)),
        user=source.text("db.user", "database.user", required=True),
        password=source.text("db.password", "database.password"),
        database=source.text("db.database", "database.name", default="sda"),
        schema=_sql_identifier(source, "db.schema", "database.schema", default="sda"),
        sslmode=sslmode,
        ca_cert=source.path("db.cacert", "database.ca_cert", required=needs_ca),
        client_cert=source.path("db.clientcert", "database.client_cert", required=needs_client),
        client_key=source.path("db.clientkey", "database.client_key", required=needs_client),
    )


def _sql_identifier(source: _Source, *keys: str, default: str) -> str:
    value = source.text(*keys, default=default)
    if not SQL_IDENTIFIER.fullmatch(value):
        raise ConfigError(
            f"{source.describe(keys)} must be an SQL identifier of at most 63 letters, digits and underscores, "
            f"not starting with a digit, not {value!r}"
        )
    return value


def _storage(config_file: ConfigFile, name: str, warnings: list[str]) -> StorageSettings:
    storage = config_file.section("storage") or {}
    if not isinstance(storage, Mapping):
        raise ConfigError("storage must be a mapping of storage names")
    backends = storage.get(name) or {}
    if not isinstance(backends, Mapping):
        raise ConfigError(f"storage.{name} must be a mapping with s3 and posix lists")
    for backend in backends:
        if backend not in ("s3", "posix"):
            warnings.append(f"config: storage.{name}.{backend} is not a known backend (s3, posix); ignored")
    return StorageSettings(
        name=name,
        s3=tuple(
            _s3_entry(_entry_source(entry, where, config_file.path, warnings), where, is_writer=name == "sync")
            for where, entry in _entries(backends, "s3", name)
        ),
        posix=tuple(
            _posix_entry(_entry_source(entry, where, config_file.path, warnings), where)
            for where, entry in _entries(backends, "posix", name)
        ),
    )


def _entries(backends: Mapping[str, object], backend: str, name: str) -> list[tuple[str, Mapping[str, object]]]:
    """Each entry of one backend list with its name, `storage.sync.s3[0]`."""
    entries = backends.get(backend) or []
    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise ConfigError(f"storage.{name}.{backend} must be a list of entries")
    return [(f"storage.{name}.{backend}[{index}]", entry) for index, entry in enumerate(entries)]


def _entry_source(entry: Mapping[str, object], where: str, origin: Path, warnings: list[str]) -> _Source:
    for key in dict.fromkeys(str(name).lower() for name in entry):
        if key not in STORAGE_ENTRY_KEYS:
            warnings.append(f"config: {where}.{key} is not a storage v2 key; ignored")
    values = collect((((where, str(name)), value) for name, value in entry.items()), origin)
    return _Source(values, origin, None)


def _posix_entry(source: _Source, where: str) -> PosixStorage:
    path = _required(source.path(f"{where}.path", required=True))
    if not path.is_absolute():
        raise ConfigError(f"{where}.path must be an absolute path, not {str(path)!r}")
    return PosixStorage(
        path=path,
        max_objects=_required(source.integer(f"{where}.max_objects", default=0)),
        max_size=_size(source, f"{where}.max_size", 0),
        writer_disabled=source.boolean(f"{where}.writer_disabled"),
    )


def _s3_entry(source: _Source, where: str, is_writer: bool) -> S3Storage:
    endpoint = source.text(f"{where}.endpoint", required=True)
    disable_https = source.boolean(f"{where}.disable_https")
    if endpoint.startswith("http:") and not disable_https:
        raise ConfigError(f"{where}.endpoint is http: but {where}.disable_https is not true")
    if endpoint.startswith("https:") and disable_https:
        raise ConfigError(f"{where}.endpoint is https: but {where}.disable_https is true")
    chunk_size = _size(source, f"{where}.chunk_size", 50 * 1024**2)
    if not CHUNK_SIZE_MIN <= chunk_size <= CHUNK_SIZE_MAX:
        raise ConfigError(f"{where}.chunk_size must be between 5MB and 1GB, not {chunk_size} bytes")
    writer_disabled = source.boolean(f"{where}.writer_disabled")
    return S3Storage(
        endpoint=endpoint.rstrip("/"),
        access_key=source.text(f"{where}.access_key", required=True),
        secret_key=source.text(f"{where}.secret_key", required=True),
        region=source.text(f"{where}.region", default="us-east-1"),
        ca_cert=source.path(f"{where}.ca_cert"),
        disable_https=disable_https,
        chunk_size=chunk_size,
        bucket_prefix=source.text(f"{where}.bucket_prefix", required=is_writer and not writer_disabled),
        max_buckets=_required(source.integer(f"{where}.max_buckets", default=1)) or 1,
        max_objects=_required(source.integer(f"{where}.max_objects", default=0)),
        max_size=_size(source, f"{where}.max_size", 0),
        writer_disabled=writer_disabled,
    )


def _size(source: _Source, key: str, default: int) -> int:
    value = source.raw((key,))
    return default if value is None else parse_data_size(value, key)
