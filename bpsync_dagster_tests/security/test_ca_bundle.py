"""The bundle of system roots plus a configured CA lives in the process's memory: a bundle another
local user plants in the temporary directory, under the name the service once used, is not read."""

import hashlib
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpsync_dagster.configuration import RemoteApiSettings
from bpsync_dagster.remote_api import RemoteApiError, RemoteSyncApi
from bpsync_dagster.trust import ca_bundle_with
from bpsync_dagster_tests.support.environment import FILE_SYNC_SCHEMA, REMOTE_PASSWORD, REMOTE_USER
from bpsync_dagster_tests.support.https_remote_api import HttpsStandInRemoteApi
from bpsync_dagster_tests.support.tls import TlsFiles, make_tls_files

MANIFEST = {
    "dataset_id": "SYNC-planted",
    "dataset_files": [{"filepath": "a/b.c4gh", "file_id": "SYNC-planted-F1", "sha256": "0" * 64}],
    "user": "submitter@example.org",
}


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def https_remote_api(tls_files: TlsFiles) -> Iterator[HttpsStandInRemoteApi]:
    with HttpsStandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, FILE_SYNC_SCHEMA, tls_files.server) as api:
        yield api


def system_roots() -> bytes:
    path = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    return path.read_bytes() if path.exists() else b""


@pytest.fixture
def planted(tls_files: TlsFiles) -> Iterator[Path]:
    """Where the bundle for the unrelated CA used to be written, holding the server's CA instead."""
    content = system_roots() + b"\n" + tls_files.other_ca_certificate.read_bytes()
    path = Path(tempfile.gettempdir()) / f"bpsync-ca-{hashlib.sha256(content).hexdigest()[:16]}.pem"
    path.write_bytes(system_roots() + b"\n" + tls_files.ca_certificate.read_bytes())
    ca_bundle_with.cache_clear()
    yield path
    path.unlink()


def test_a_planted_bundle_does_not_make_an_untrusted_server_trusted(
    https_remote_api: HttpsStandInRemoteApi, tls_files: TlsFiles, planted: Path
) -> None:
    settings = RemoteApiSettings(
        https_remote_api.url, None, REMOTE_USER, REMOTE_PASSWORD, tls_files.other_ca_certificate
    )

    with pytest.raises(RemoteApiError, match="certificate verify failed"):
        RemoteSyncApi(settings, connect_timeout_seconds=5, read_timeout_seconds=5).post_manifest(MANIFEST)

    assert https_remote_api.received == []


def test_the_bundle_is_in_memory_and_holds_the_system_roots_and_the_ca(tls_files: TlsFiles, planted: Path) -> None:
    bundle = Path(ca_bundle_with(tls_files.ca_certificate))

    assert bundle.read_bytes() == system_roots() + b"\n" + tls_files.ca_certificate.read_bytes()
    assert bundle.parent == Path("/proc/self/fd")
    assert bundle.resolve().name.startswith("memfd:bpsync-ca-bundle"), "an anonymous file in memory"
    assert ca_bundle_with(tls_files.ca_certificate) == str(bundle)
