"""A real S3 endpoint for tests: moto's threaded server on a free local port.

`S3Server` and `radosgw.RadosGateway` (Ceph's RADOS Gateway) offer the same interface (`name`,
`endpoint_url`, `access_key`, `secret_key`, `ca_certificate`, `client()`, `start()`, `stop()`), so
a test can run against either.
"""

from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

from bpsync_dagster.configuration import CopySettings, S3Storage, StorageSettings
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster_tests.support.lifecycle import StartedService

ACCESS_KEY = "access"
SECRET_KEY = "secretkey"
REGION = "us-east-1"
# For `@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)` (see conftest.py): the S3
# tests run against both servers. `radosgw-https` is the same gateway over HTTPS.
S3_SERVERS = ("moto", "radosgw")


def s3_client(endpoint_url: str, access_key: str, secret_key: str, ca_certificate: Path | None = None) -> BaseClient:
    """A boto3 S3 client as the tests and benchmarks build them: path-style, and checksums only where
    an operation requires one (boto3's default aws-chunked uploads with a checksum trailer are
    refused by Ceph's RADOS Gateway over HTTPS, as by the project's own client)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        verify=str(ca_certificate) if ca_certificate else None,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class S3Endpoint(Protocol):
    """What tests need of an S3 server, whichever it is."""

    @property
    def name(self) -> str:
        """`moto`, `radosgw` or `radosgw-https`: the test ID part that says which server ran."""

    @property
    def endpoint_url(self) -> str: ...

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def ca_certificate(self) -> Path | None:
        """The CA to trust for an https endpoint."""

    def client(self) -> BaseClient: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class S3Server(StartedService):
    """Moto S3 on 127.0.0.1; `stop()`/`start()` take it down and bring it back on the same port.

    Buckets and objects survive a restart (moto keeps them in process memory).
    """

    name = "moto"
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    ca_certificate: Path | None = None

    def __init__(self) -> None:
        self._port = 0
        self._server: ThreadedMotoServer | None = None

    @property
    def port(self) -> int:
        """The TCP port, fixed once the server has started the first time."""
        return self._port

    @property
    def endpoint_url(self) -> str:
        """Base URL of the S3 endpoint."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Start listening (on a free port the first time, on the same port afterwards)."""
        if self._server is not None:
            return
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._port, verbose=False)
        server.start()
        self._port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        """Stop answering and close the listening socket, so connections are refused."""
        if self._server is None:
            return
        self._server.stop()
        # ThreadedMotoServer.stop() only shuts the serve loop down; the socket would keep accepting.
        if self._server._server is not None:
            self._server._server.server_close()
        self._server = None

    def client(self) -> BaseClient:
        """A boto3 S3 client for this endpoint (path-style addressing)."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key)


def s3_storage_entry(server: S3Endpoint, **settings: Any) -> S3Storage:
    """A storage entry of the service's configuration on `server`, with `settings` besides."""
    return S3Storage(
        endpoint=server.endpoint_url,
        access_key=server.access_key,
        secret_key=server.secret_key,
        disable_https=server.endpoint_url.startswith("http:"),
        ca_cert=server.ca_certificate,
        **settings,
    )


def s3_sync_storage(
    server: S3Endpoint,
    prefix: str,
    chunk_size: int,
    buffer_limit: int = CopySettings().buffer_limit,
    bandwidth_limit: int = CopySettings().bandwidth_limit,
) -> SyncStorage:
    """The service's sync storage on `server`: one S3 entry whose buckets are named `<prefix><n>`."""
    entry = s3_storage_entry(server, chunk_size=chunk_size, bucket_prefix=prefix)
    return SyncStorage(StorageSettings("sync", s3=(entry,)), buffer_limit, bandwidth_limit)
