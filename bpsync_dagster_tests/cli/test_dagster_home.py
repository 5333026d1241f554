"""`bpsync` without a Dagster instance to record its runs in says so in one line."""

import pytest

from bpsync_dagster.cli.main import main


@pytest.mark.parametrize("value", [None, ""])
def test_an_unset_dagster_home_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    else:
        monkeypatch.setenv("DAGSTER_HOME", value)

    status = main(["backfill", "--dry-run"])

    assert status == 2
    assert capsys.readouterr().err == "bpsync: DAGSTER_HOME is not set: set it to the folder that holds dagster.yaml\n"
