"""Read the SDA-compatible configuration: a YAML file plus environment overrides, validated by the
pydantic models of `settings`.

A key's environment form is its dotted path upper-cased with `.` turned into `_`; YAML keys are
case-insensitive and may be nested or dotted (see `config_file`); an empty environment variable
counts as unset. Storage is YAML only. A setting may have several spellings (`db.host` and
`database.host`, `broker.caCert` and `broker.ca_cert`): the environment overrides the file whatever
the spelling, and two spellings with different values in the environment, or in the file, are an
error naming both. Each model field names its spellings (`settings.Key`); the loader finds the
values, the model validates them and names a bad key as `describe` does. Reading goes on past a
problem, so that one `ConfigError` reports every missing or bad key at once.
"""

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bpsync_dagster.configuration.config_file import (
    ConfigFile,
    YamlValue,
    collect,
    locate_config_file,
    read_config_file,
    same_value,
)
from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.settings import (
    IS_WRITER,
    PROBLEM,
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
T = TypeVar("T")


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


class _Problems:
    """The problems found so far: reading the configuration goes on past a bad key, so that one run
    reports them all."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self.lines: list[str] = list(lines)

    def read(self, read: Callable[[], T]) -> T | None:
        """What `read` returns, or None when it raises `ConfigError`, whose problems are kept."""
        try:
            return read()
        except ConfigError as error:
            self.lines += error.problems
            return None


def _look_up(
    model: type[BaseModel], source: _Source, prefix: str = ""
) -> tuple[dict[str, object], dict[str, str], list[str]]:
    """The values set for the keyed fields of `model` (each key under `prefix`), how each field's key
    is named in errors, and the problems: each required key that is unset, each key set twice."""
    values: dict[str, object] = {}
    names: dict[str, str] = {}
    problems: list[str] = []
    for name, spellings in field_keys(model).items():
        keys = tuple(f"{prefix}{spelling}" for spelling in spellings)
        names[name] = source.describe(keys)
        try:
            value = source.raw(keys)
        except ConfigError as error:
            problems += error.problems
            continue
        if value is not None:
            values[name] = value
        elif model.model_fields[name].is_required():
            problems.append(f"{names[name]} is required")
    return values, names, problems


def read_model(model: type[M], source: _Source, prefix: str = "", **context: object) -> M:
    """`model` from the values of its keys. Every unset required key, every value its field refuses
    and (once the fields are valid) every cross-field problem is a problem of one `ConfigError`, each
    naming its key."""
    values, names, problems = _look_up(model, source, prefix)
    try:
        settings = model.model_validate(values, context={**names, **context})
    except ValidationError as error:
        problems += [_problem(item, names) for item in error.errors() if item["type"] != "missing"]
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise ConfigError(*problems)
    return settings


def _problem(error: ErrorDetails, names: Mapping[str, str]) -> str:
    """A validation error as a line naming its key: the field's own message, or pydantic's (which never
    quotes the value, a secret perhaps)."""
    context = error.get("ctx") or {}
    if error["type"] == PROBLEM and "problem" in context:
        return str(context["problem"])
    field = str(error["loc"][0]) if error["loc"] else ""
    return f"{names.get(field, field)}: {error['msg']}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration, or raise one `ConfigError` with every problem: each
    missing or bad key, named with its environment variable, and where the configuration was read."""
    environ = os.environ if environ is None else environ
    config_file = read_config_file(environ)
    source = _Source(config_file.values, config_file.path, environ)
    values, names, top_level_problems = _look_up(Settings, source)
    problems = _Problems(top_level_problems)
    warnings: list[str] = []
    sections = {
        "remote": problems.read(lambda: read_model(RemoteApiSettings, source, **{WARNINGS: warnings})),
        "crypt4gh": problems.read(lambda: read_model(Crypt4ghSettings, source)),
        "broker": problems.read(lambda: read_model(BrokerSettings, source)),
        "database": problems.read(lambda: read_model(DatabaseSettings, source)),
        "archive": problems.read(lambda: _storage(config_file, "archive", warnings)),
        "sync": problems.read(lambda: _storage(config_file, "sync", warnings)),
        "schema": problems.read(lambda: read_model(SchemaSettings, source)),
        "sensor": problems.read(lambda: read_model(SensorSettings, source)),
        "audit": problems.read(lambda: read_model(AuditSettings, source)),
        "copy": problems.read(lambda: read_model(CopySettings, source)),
        "log": problems.read(lambda: read_model(LogSettings, source)),
    }
    if problems.lines:
        # The storages share the `storage` section: a problem of the section is found once for each.
        raise ConfigError(*dict.fromkeys(problems.lines), where=config_file.where)
    return Settings.model_validate({**values, **sections, "warnings": tuple(warnings)}, context=names)


def config_location(environ: Mapping[str, str] | None = None) -> str:
    """Where `load_settings` reads the configuration from: the file (if it exists) and the environment."""
    path, _ = locate_config_file(os.environ if environ is None else environ)
    return ConfigFile(path, {}, found=path.exists()).where


def _storage(config_file: ConfigFile, name: str, warnings: list[str]) -> StorageSettings:
    """The storage `name` with all its entries, or a `ConfigError` with every entry's problems."""
    storage = config_file.section("storage") or {}
    if not isinstance(storage, Mapping):
        raise ConfigError("storage must be a mapping of storage names")
    backends = storage.get(name) or {}
    if not isinstance(backends, Mapping):
        raise ConfigError(f"storage.{name} must be a mapping with s3 and posix lists")
    for backend in backends:
        if backend not in ("s3", "posix"):
            warnings.append(f"config: storage.{name}.{backend} is not a known backend (s3, posix); ignored")
    problems = _Problems()
    s3 = [
        problems.read(
            lambda where=where, entry=entry: read_model(
                S3Storage,
                _entry_source(entry, where, config_file.path, warnings),
                f"{where}.",
                **{IS_WRITER: name == "sync"},
            )
        )
        for where, entry in problems.read(lambda: _entries(backends, "s3", name)) or []
    ]
    posix = [
        problems.read(
            lambda where=where, entry=entry: read_model(
                PosixStorage, _entry_source(entry, where, config_file.path, warnings), f"{where}."
            )
        )
        for where, entry in problems.read(lambda: _entries(backends, "posix", name)) or []
    ]
    if problems.lines:
        raise ConfigError(*problems.lines)
    settings = StorageSettings(
        name=name,
        s3=tuple(entry for entry in s3 if entry is not None),
        posix=tuple(entry for entry in posix if entry is not None),
    )
    if name == "archive" and not settings.entries:
        raise ConfigError("storage.archive needs at least one s3 or posix entry")
    if name == "sync" and all(entry.writer_disabled for entry in settings.entries):
        raise ConfigError("storage.sync needs at least one s3 or posix entry to write to")
    return settings


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
