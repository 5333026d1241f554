"""Sync storage over HTTPS trusts the entry's `ca_cert` (added to the system's roots), and nothing
else: the same gateway behind a certificate of another CA is refused, not written to unverified."""

import uuid
from pathlib import Path

import pytest

from bpsync_dagster.configuration import S3Storage, StorageSettings
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.radosgw import RadosGateway
from bpsync_dagster_tests.support.tls import make_tls_files


def https_storage(radosgw: RadosGateway, prefix: str, ca_cert: Path) -> SyncStorage:
    https = radosgw.https()
    entry = S3Storage(
        endpoint=https.endpoint_url,
        access_key=https.access_key,
        secret_key=https.secret_key,
        ca_cert=ca_cert,
        bucket_prefix=prefix,
    )
    return SyncStorage(StorageSettings("sync", s3=(entry,)))


def test_s3_over_https_is_verified_against_the_entrys_ca_cert(radosgw: RadosGateway, tmp_path: Path) -> None:
    https = radosgw.https()
    assert https.endpoint_url.startswith("https://")
    prefix = f"https-{uuid.uuid4().hex[:8]}-"
    storage = https_storage(radosgw, prefix, https.ca_certificate)
    placement = storage.place("trusted.c4gh", 4)
    staged = placement.stage(4)
    staged.write(b"body")
    staged.commit()

    assert https.client().get_object(Bucket=f"{prefix}1", Key="trusted.c4gh")["Body"].read() == b"body"
    with pytest.raises(StorageError, match=r"^listing of buckets at https://.*: S3 endpoint unreachable \(SSLError\)$"):
        https_storage(radosgw, prefix, make_tls_files(tmp_path / "unrelated").ca_certificate)
