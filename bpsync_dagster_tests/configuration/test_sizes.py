"""`parse_data_size`: byte counts and binary units as SDA writes them."""

import pytest

from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.configuration.sizes import parse_data_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50MB", 50 * 1024 * 1024),
        ("1GB", 1024**3),
        ("10gb", 10 * 1024**3),
        ("5 MiB", 5 * 1024**2),
        ("2k", 2048),
        ("0", 0),
        ("1234", 1234),
        (0, 0),
        (52428800, 52428800),
        ("1.5GB", 3 * 512 * 1024**2),
    ],
)
def test_sizes(value: object, expected: int) -> None:
    assert parse_data_size(value, "storage.sync.s3[0].max_size") == expected


@pytest.mark.parametrize("value", ["abc", "", "-5MB", "10XB", "MB", "1e3", True, -1])
def test_malformed_size_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_data_size(value, "storage.archive.s3[0].chunk_size")

    assert str(caught.value).startswith("config: storage.archive.s3[0].chunk_size must ")
