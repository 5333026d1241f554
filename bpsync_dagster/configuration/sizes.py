"""Data sizes as SDA writes them: a byte count or a number with a binary unit ("50MB")."""

import re

from bpsync_dagster.configuration.errors import ConfigError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_data_size(value: object, key: str) -> int:
    """Bytes in `value`; MB means 1024*1024 bytes, as in SDA."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a data size such as 50MB, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"{key} must not be negative")
        return value
    match = _SIZE.match(str(value))
    if match is None or match.group(2).lower() not in _UNITS:
        raise ConfigError(f"{key} must be a data size such as 50MB, not {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
