"""A real S3 endpoint for tests: moto's threaded server on a free local port."""

from types import TracebackType

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCESS_KEY = "access"
SECRET_KEY = "secretkey"
REGION = "us-east-1"


class S3Server:
    """Moto S3 on 127.0.0.1; `stop()`/`start()` take it down and bring it back on the same port.

    Buckets and objects survive a restart (moto keeps them in process memory).
    """

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
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def __enter__(self) -> "S3Server":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
