"""Find the JSON schemas of the wire formats: the shipped `schemas/` or the folder `SCHEMA_PATH` names."""

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
from jsonschema.protocols import Validator

from bpsync_dagster.configuration.errors import ConfigError
from bpsync_dagster.configuration.settings import SchemaSettings

SHIPPED_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def schema_file(settings: SchemaSettings, folder: str, name: str) -> Path:
    """`<folder>/<name>` under `SCHEMA_PATH` (or in `SCHEMA_PATH` itself), else the shipped copy."""
    candidates = []
    if settings.path is not None:
        candidates += [settings.path / folder / name, settings.path / name, settings.path.parent / folder / name]
    candidates.append(SHIPPED_SCHEMAS / folder / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"schema {folder}/{name} not found under schema.path (env SCHEMA_PATH) {settings.path}")


def mapping_schema_file(settings: SchemaSettings) -> Path:
    return schema_file(settings, settings.type, "dataset-mapping.json")


def file_sync_schema_file(settings: SchemaSettings) -> Path:
    return schema_file(settings, "bigpicture", "file-sync.json")


@functools.cache
def load_schema(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"schema {path} cannot be read as JSON: {error}") from error


def _javascript_pattern(
    validator: Validator, pattern: str, instance: object, schema: dict
) -> Iterator[jsonschema.ValidationError]:
    """`pattern` with ECMA-262's `$`, which, unlike Python's, does not match before a final newline."""
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if not re.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {schema['pattern']!r}")


def schema_validator(schema: dict[str, object]) -> Validator:
    """A validator for `schema` whose patterns behave as in the SDA services (ECMA-262, not Python)."""
    base = jsonschema.validators.validator_for(schema)
    return jsonschema.validators.extend(base, {"pattern": _javascript_pattern})(schema)
