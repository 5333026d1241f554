"""A private RabbitMQ node with a TLS listener that requires a client certificate.

It is a `PrivateRabbitMQ` (own name, ports, cookie and directories; the shared broker is never
touched) whose `rabbitmq.conf` also opens `listeners.ssl.default` on a port of its own, with
`ssl_options.verify = verify_peer` and `ssl_options.fail_if_no_peer_cert = true`. The plain
listener stays open on `port`, for the test's own set-up (topology, publishing).
"""

from pathlib import Path

from bpsync_dagster_tests.support.ports import free_port
from bpsync_dagster_tests.support.private_rabbitmq import PrivateRabbitMQ
from bpsync_dagster_tests.support.tls import TlsFiles

_TLS_CONFIG = """\
listeners.ssl.default = 127.0.0.1:{port}
ssl_options.cacertfile = {ca}
ssl_options.certfile = {certificate}
ssl_options.keyfile = {key}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
"""


class TlsRabbitMQ(PrivateRabbitMQ):
    """`with TlsRabbitMQ(directory, tls_files) as broker:`; AMQPS on `tls_port`, plain AMQP on `port`."""

    def __init__(self, directory: Path, tls_files: TlsFiles, *, start: bool = True) -> None:
        self.tls_files = tls_files
        self.tls_port = free_port()
        super().__init__(directory, start=start)
        while self.tls_port in (self.port, self.dist_port):
            self.tls_port = free_port()
            self._write_config()

    def _prepare_directories(self) -> None:
        super()._prepare_directories()
        self._plain_config = (self.directory / "rabbitmq.conf").read_text()
        self._write_config()

    def _write_config(self) -> None:
        (self.directory / "rabbitmq.conf").write_text(
            self._plain_config
            + _TLS_CONFIG.format(
                port=self.tls_port,
                ca=self.tls_files.ca_certificate,
                certificate=self.tls_files.server.certificate,
                key=self.tls_files.server.key,
            )
        )
