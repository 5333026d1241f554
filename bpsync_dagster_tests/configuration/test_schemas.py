"""Finding the wire-format JSON schemas: shipped with the package or under `SCHEMA_PATH`."""

import json
from pathlib import Path

import pytest

from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.configuration.schemas import (
    SHIPPED_SCHEMAS,
    file_sync_schema_file,
    load_schema,
    mapping_schema_file,
)
from bpsync_dagster.configuration.settings import SchemaSettings
from bpsync_dagster_tests.configuration.test_loader import VALID_CONFIG, load


@pytest.mark.parametrize("schema_type", ["isolated", "federated"])
def test_shipped_schemas_are_found_whatever_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_type: str
) -> None:
    monkeypatch.chdir(tmp_path)

    mapping = mapping_schema_file(SchemaSettings(type=schema_type))
    file_sync = file_sync_schema_file(SchemaSettings(type=schema_type))

    assert mapping == SHIPPED_SCHEMAS / schema_type / "dataset-mapping.json"
    assert file_sync == SHIPPED_SCHEMAS / "bigpicture" / "file-sync.json"
    assert mapping.is_absolute()
    assert "dataset_id" in json.dumps(load_schema(mapping))
    assert "dataset_files" in load_schema(file_sync)["properties"]  # type: ignore[operator]


def test_schema_path_overrides_the_shipped_schemas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "custom" / "isolated" / "dataset-mapping.json"
    custom.parent.mkdir(parents=True)
    custom.write_text('{"title": "custom"}')
    monkeypatch.chdir(tmp_path)

    found = mapping_schema_file(SchemaSettings(type="isolated", path=tmp_path / "custom"))

    assert found == custom
    assert load_schema(found) == {"title": "custom"}


def test_schema_path_and_type_come_from_the_environment(tmp_path: Path) -> None:
    settings = load(tmp_path, VALID_CONFIG, SCHEMA_TYPE="federated", SCHEMA_PATH=str(tmp_path / "s"))

    assert settings.schema == SchemaSettings(type="federated", path=tmp_path / "s")


@pytest.mark.parametrize("path", [None, "folder"])
def test_missing_schema_is_a_config_error(tmp_path: Path, path: str | None) -> None:
    settings = SchemaSettings(type="no-such-type", path=None if path is None else tmp_path / path)

    with pytest.raises(ConfigError) as caught:
        mapping_schema_file(settings)

    message = str(caught.value)
    assert message.startswith("config: schema no-such-type/dataset-mapping.json not found")
    assert "SCHEMA_PATH" in message
    assert "\n" not in message


def test_unreadable_schema_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "isolated" / "dataset-mapping.json"
    broken.parent.mkdir()
    broken.write_text("{not json")

    with pytest.raises(ConfigError, match=r"^config: schema .* cannot be read as JSON"):
        load_schema(mapping_schema_file(SchemaSettings(type="isolated", path=tmp_path)))
