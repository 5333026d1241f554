import json
import logging
from collections.abc import Iterator

import pytest

from bpsync_dagster.configuration.logs import SERVICE_LOGGER, configure_logging
from bpsync_dagster.configuration.settings import LogSettings


@pytest.fixture(autouse=True)
def restore_service_logger() -> Iterator[None]:
    logger = logging.getLogger(SERVICE_LOGGER)
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("trace", logging.DEBUG), ("warn", logging.WARNING), ("fatal", logging.CRITICAL), ("panic", logging.CRITICAL)],
)
def test_sda_log_levels_map_to_python_levels(level: str, expected: int) -> None:
    configure_logging(LogSettings(level=level))
    assert logging.getLogger(SERVICE_LOGGER).level == expected


def test_json_format_is_one_object_per_line_with_the_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(level="info", format="json"))
    logger = logging.getLogger(f"{SERVICE_LOGGER}.jobs")
    logger.info("copied\nfile", extra={"dataset_id": "SYNC-1", "accession_id": "SYNC-F-1"})
    logger.debug("not shown")
    configure_logging(LogSettings(level="info", format="json"))
    logger.warning("once, after configuring twice")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (
        first["message"] == "copied\nfile" and first["dataset_id"] == "SYNC-1" and first["accession_id"] == "SYNC-F-1"
    )
    assert first["level"] == "info" and first["logger"] == f"{SERVICE_LOGGER}.jobs"
    assert json.loads(lines[1])["level"] == "warning"
