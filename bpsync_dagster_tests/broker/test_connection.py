"""`vhost_name` (spec §2): the vhost setting is the path of an AMQP URI."""

import pytest

from bpsync_dagster.broker.connection import vhost_name


@pytest.mark.parametrize(
    ("vhost", "expected"),
    [
        ("sda", "sda"),
        ("/sda", "sda"),
        ("", "/"),
        ("/", "/"),
        ("%2F", "/"),
        ("%2fsda", "/sda"),
        ("my%20vhost", "my vhost"),
    ],
)
def test_vhost_name(vhost: str, expected: str) -> None:
    assert vhost_name(vhost) == expected
