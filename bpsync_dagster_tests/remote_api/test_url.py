"""`dataset_url` (spec §1.6): the host's path becomes `/dataset`; the port only when the host has none."""

import pytest

from bpsync_dagster.remote_api import dataset_url


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://remote.example.org", None, "https://remote.example.org/dataset"),
        ("https://remote.example.org", 8443, "https://remote.example.org:8443/dataset"),
        ("http://remote.example.org", 8080, "http://remote.example.org:8080/dataset"),
        ("http://remote.example.org", None, "http://remote.example.org/dataset"),
        ("https://remote.example.org:9443", None, "https://remote.example.org:9443/dataset"),
        ("https://remote.example.org:9443", 8443, "https://remote.example.org:9443/dataset"),
        ("http://remote.example.org:80", 8080, "http://remote.example.org:80/dataset"),
        ("https://remote.example.org/api/v1/sync", 443, "https://remote.example.org:443/dataset"),
        ("https://remote.example.org/", None, "https://remote.example.org/dataset"),
        ("https://remote.example.org/dataset", None, "https://remote.example.org/dataset"),
        ("https://remote.example.org/x?y=1#z", None, "https://remote.example.org/dataset"),
        ("http://[::1]", 8080, "http://[::1]:8080/dataset"),
        ("http://[::1]:9000/p", 8080, "http://[::1]:9000/dataset"),
        ("http://127.0.0.1", 8080, "http://127.0.0.1:8080/dataset"),
        ("remote.example.org", 8443, "https://remote.example.org:8443/dataset"),
        ("remote.example.org:9443", 8443, "https://remote.example.org:9443/dataset"),
    ],
)
def test_dataset_url(host: str, port: int | None, expected: str) -> None:
    assert dataset_url(host, port) == expected
