"""The service's own log lines: `LOG_LEVEL` and `LOG_FORMAT` (text, or one JSON object per line).

They go to stderr of whichever process logs them (daemon, code server, run, `bpsync`); inside runs,
Dagster also records them in the run's event log (`python_logs` in dagster.yaml).
"""

import datetime
import json
import logging
import sys

from bpsync_dagster.configuration.settings import LogSettings, Settings

SERVICE_LOGGER = "bpsync_dagster"
CONTEXT_FIELDS = ("dataset_id", "accession_id", "run_id", "queue")
LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
_HANDLER_NAME = "bpsync-stderr"
# Warnings of the configuration already logged by this process: definitions load more than once in one.
_warned: set[str] = set()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the dataset and accession IDs a record carries."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in CONTEXT_FIELDS if getattr(record, name, None)})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str)


def configure_logging(settings: LogSettings) -> None:
    """Set the level and format of the `bpsync_dagster` loggers; calling it again replaces the handler."""
    logger = logging.getLogger(SERVICE_LOGGER)
    logger.setLevel(LEVELS[settings.level])
    for handler in [handler for handler in logger.handlers if handler.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)


def start_logging(settings: Settings) -> None:
    """Configure the service's loggers from `log.*` and log the configuration's warnings: once, where a
    process starts (the code location's definitions, the `bpsync` command), never as a side effect of
    reading the configuration."""
    configure_logging(settings.log)
    for warning in settings.warnings:
        if warning not in _warned:
            _warned.add(warning)
            logging.getLogger(f"{SERVICE_LOGGER}.configuration").warning(warning)
