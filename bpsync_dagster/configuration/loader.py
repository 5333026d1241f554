"""Read the SDA-compatible configuration: a YAML file plus environment overrides, validated by the
pydantic models of `settings`.

A key's environment form is its dotted path upper-cased with `.` turned into `_`; YAML keys are
case-insensitive and may be nested or dotted (see `config_file`); an empty environment variable
counts as unset. Storage is YAML only. A setting may have several spellings (`db.host` and
`database.host`, `broker.caCert` and `broker.ca_cert`): the environment overrides the file whatever
the spelling, and two spellings with different values in the environment, or in the file, are an
error naming both. Each model field names its spellings (`settings.Key`); the loader finds the
values, the model validates them and names a bad key as `describe` does.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from bpsync_dagster.configuration.config_file import ConfigFile, YamlValue, collect, read_config_file, same_value
from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.settings import (
    IS_WRITER,
    WARNINGS,
    AuditSettings,
    BrokerSettings,
    CopySettings,
    Crypt4ghSettings,
    DatabaseSettings,
    Key,
    LogSettings,
    PosixStorage,
    RemoteApiSettings,
    S3Storage,
    SchemaSettings,
    SensorSettings,
    Settings,
    StorageSettings,
)

M = TypeVar("M", bound=BaseModel)


def field_keys(model: type[BaseModel]) -> dict[str, tuple[str, ...]]:
    """The spellings of each field of `model` that is read from a key, by field name."""
    return {
        name: metadata.spellings
        for name, field in model.model_fields.items()
        for metadata in field.metadata
        if isinstance(metadata, Key)
    }


STORAGE_ENTRY_KEYS = frozenset(
    spelling for model in (S3Storage, PosixStorage) for keys in field_keys(model).values() for spelling in keys
)


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


def key_values(model: type[BaseModel], source: _Source, prefix: str = "") -> tuple[dict[str, object], dict[str, str]]:
    """The values set for the keyed fields of `model` (each key under `prefix`), and how each field's
    key is named in errors; a required key that is unset is a `ConfigError` naming it."""
    values: dict[str, object] = {}
    names: dict[str, str] = {}
    for name, spellings in field_keys(model).items():
        keys = tuple(f"{prefix}{spelling}" for spelling in spellings)
        value = source.raw(keys)
        names[name] = source.describe(keys)
        if value is not None:
            values[name] = value
        elif model.model_fields[name].is_required():
            raise ConfigError(f"{names[name]} is required")
    return values, names


def read_model(model: type[M], source: _Source, prefix: str = "", **context: object) -> M:
    """`model` from the values of its keys: an unset required key, or a value its field refuses, is a
    `ConfigError` naming the key."""
    values, names = key_values(model, source, prefix)
    return model.model_validate(values, context={**names, **context})


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration, or raise `ConfigError` naming the first bad key."""
    environ = os.environ if environ is None else environ
    config_file = read_config_file(environ)
    source = _Source(config_file.values, config_file.path, environ)
    values, names = key_values(Settings, source)
    warnings: list[str] = []
    remote = read_model(RemoteApiSettings, source, **{WARNINGS: warnings})
    crypt4gh = read_model(Crypt4ghSettings, source)
    broker = read_model(BrokerSettings, source)
    database = read_model(DatabaseSettings, source)
    archive = _storage(config_file, "archive", warnings)
    sync = _storage(config_file, "sync", warnings)
    if not archive.entries:
        raise ConfigError("storage.archive needs at least one s3 or posix entry")
    if not any(not entry.writer_disabled for entry in sync.entries):
        raise ConfigError("storage.sync needs at least one s3 or posix entry to write to")
    sections = {
        "remote": remote,
        "crypt4gh": crypt4gh,
        "broker": broker,
        "database": database,
        "archive": archive,
        "sync": sync,
        "schema": read_model(SchemaSettings, source),
        "sensor": read_model(SensorSettings, source),
        "audit": read_model(AuditSettings, source),
        "copy": read_model(CopySettings, source),
        "log": read_model(LogSettings, source),
    }
    return Settings.model_validate({**values, **sections, "warnings": tuple(warnings)}, context=names)


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
            read_model(
                S3Storage,
                _entry_source(entry, where, config_file.path, warnings),
                f"{where}.",
                **{IS_WRITER: name == "sync"},
            )
            for where, entry in _entries(backends, "s3", name)
        ),
        posix=tuple(
            read_model(PosixStorage, _entry_source(entry, where, config_file.path, warnings), f"{where}.")
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
