"""The README's troubleshooting table quotes `bpsync`'s messages as `bpsync` prints them."""

import os
import re
from pathlib import Path

import pytest
import yaml

from bpsync_dagster.cli.main import main
from bpsync_dagster_tests.configuration.test_loader import config
from bpsync_dagster_tests.support.environment import PROJECT_ROOT


def troubleshooting_messages() -> list[str]:
    """The first column of the README's troubleshooting table: one or more quoted messages per row."""
    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [message for row in rows for message in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def as_pattern(message: str) -> re.Pattern[str]:
    """The README's message with its placeholders (upper-case words, `…`) matching any text."""
    parts = re.split(r"(…|\b[A-Z]{3,}\b)", message)
    return re.compile(
        "".join(".+" if part == "…" or re.fullmatch(r"[A-Z]{3,}", part) else re.escape(part) for part in parts)
    )


def test_a_missing_key_is_printed_as_the_readme_quotes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in os.environ if name.startswith(("SYNC_", "CONFIG"))]:
        monkeypatch.delenv(name)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config(**{"sync.centerPrefix": None})))
    monkeypatch.setenv("CONFIG_FILE", str(config_file))

    status = main(["check"])

    printed = capsys.readouterr().err.strip()
    assert status == 2
    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Troubleshooting\n", 1)[1]
    assert f"`{printed}`" in section, printed
    assert any(as_pattern(message).fullmatch(printed) for message in troubleshooting_messages()), printed


def test_a_missing_dagster_home_is_printed_as_the_readme_quotes_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    assert main(["backfill", "--dry-run"]) == 2

    printed = capsys.readouterr().err.strip()
    assert printed in troubleshooting_messages(), printed
