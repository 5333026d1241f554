"""Find and read the YAML configuration file, with its keys spelled the ways SDA deployments write them.

The file is `/config.yaml` unless `CONFIG_FILE` or `CONFIGFILE` names a file or `CONFIGPATH` a
directory holding `config.yaml` (the SDA services' own variables); two of them naming different
files is an error. A key may be nested (`schema: {type: isolated}`), written dotted in one YAML key
(`schema.type: isolated`, as the SDA Helm chart renders it) or partly both (`sync: {remote.host: …}`);
keys are case-insensitive. One key written twice in the file with different values is an error
naming both spellings; an empty or null value counts as unset.
"""

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bpsync_dagster.configuration.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/config.yaml")
FILE_VARIABLES = ("CONFIG_FILE", "CONFIGFILE")
DIRECTORY_VARIABLE = "CONFIGPATH"
CONFIG_FILE_VARIABLES = (*FILE_VARIABLES, DIRECTORY_VARIABLE)
DIRECTORY_FILE_NAME = "config.yaml"


@dataclass(frozen=True)
class YamlValue:
    """A value of the file and the YAML keys it is written under, as written."""

    value: object
    keys: tuple[str, ...]

    @property
    def spelling(self) -> str:
        """`schema.type` for one dotted key, `schema: type` for nested keys."""
        return ": ".join(self.keys)


def same_value(first: object, second: object) -> bool:
    """Whether two spellings agree; `5432` and `"5432"` do."""
    return first == second or str(first) == str(second)


def collect(pairs: Iterable[tuple[tuple[str, ...], object]], path: Path) -> dict[str, YamlValue]:
    """Values by lower-cased dotted key; one key given twice with different values is an error."""
    values: dict[str, YamlValue] = {}
    for keys, value in pairs:
        if value is None or value == "":
            continue
        key = ".".join(keys).lower()
        given = YamlValue(value, keys)
        earlier = values.setdefault(key, given)
        if not same_value(earlier.value, value):
            raise ConfigError(
                f"{key} is set twice with different values in {path}: '{earlier.spelling}' and '{given.spelling}'"
            )
    return values


def _leaves(tree: Mapping[object, object], keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    for name, value in tree.items():
        written = (*keys, str(name))
        if isinstance(value, Mapping):
            yield from _leaves(value, written)
        else:
            yield written, value


@dataclass(frozen=True)
class ConfigFile:
    """The file's values by lower-cased dotted key (none when the default file is absent, `found` False)."""

    path: Path
    values: Mapping[str, YamlValue]
    found: bool = True

    @property
    def where(self) -> str:
        """Where the configuration was read from, for messages."""
        if self.found:
            return f"{self.path} and the environment"
        return (
            f"the environment only: there is no file {self.path} "
            f"({', '.join(FILE_VARIABLES)} or {DIRECTORY_VARIABLE} may name another)"
        )

    def section(self, name: str) -> object:
        """The part of the file under the top-level key `name` as a nested tree with lower-cased
        keys, whichever way its keys are written; None when absent. Lists are kept as written."""
        keys = [key for key in self.values if key == name or key.startswith(f"{name}.")]
        for key in keys:
            for other in keys:
                if other.startswith(f"{key}."):
                    raise ConfigError(
                        f"{key} is written both as a value and as a section in {self.path}: "
                        f"'{self.values[key].spelling}' and '{self.values[other].spelling}'"
                    )
        if name in self.values:
            return self.values[name].value
        tree: dict[str, object] = {}
        for key in keys:
            *parents, last = key.split(".")[1:]
            node = tree
            for part in parents:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[last] = self.values[key].value
        return tree or None


def locate_config_file(environ: Mapping[str, str]) -> tuple[Path, str | None]:
    """The file to read and the variable that names it (None for the default file)."""
    named: dict[str, Path] = {}
    for variable in CONFIG_FILE_VARIABLES:
        value = environ.get(variable)
        if value:
            named[variable] = Path(value) / DIRECTORY_FILE_NAME if variable == DIRECTORY_VARIABLE else Path(value)
    if not named:
        return DEFAULT_CONFIG_FILE, None
    (first, path), *others = named.items()
    for other, other_path in others:
        if Path(os.path.realpath(other_path)) != Path(os.path.realpath(path)):
            raise ConfigError(f"{first} and {other} name different files: {path} and {other_path}")
    return path, first


def read_config_file(environ: Mapping[str, str]) -> ConfigFile:
    """Read the file the environment names, or the default file; an absent default file is empty."""
    path, variable = locate_config_file(environ)
    if not path.exists():
        if variable == DIRECTORY_VARIABLE:
            directory = path.parent
            if not directory.is_dir():
                raise ConfigError(f"the directory {directory} named by {variable} does not exist")
            raise ConfigError(f"the directory {directory} named by {variable} holds no {DIRECTORY_FILE_NAME}")
        if variable is not None:
            raise ConfigError(f"the file {path} named by {variable} does not exist")
        return ConfigFile(path, {}, found=False)
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        # from None: a YAML error quotes the file around the problem, a password perhaps.
        raise ConfigError(f"{path} is not valid YAML{line}") from None
    if content is None:
        return ConfigFile(path, {})
    if not isinstance(content, Mapping):
        raise ConfigError(f"{path} must hold a YAML mapping of keys")
    return ConfigFile(path, collect(_leaves(content), path))
