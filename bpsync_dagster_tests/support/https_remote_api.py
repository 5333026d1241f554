"""The stand-in remote sync API served over HTTPS with a certificate of the test's own CA."""

import ssl
import sys
import traceback
from pathlib import Path

from bpsync_dagster_tests.support.remote_api import StandInRemoteApi
from bpsync_dagster_tests.support.tls import CertificateFiles


class HttpsStandInRemoteApi(StandInRemoteApi):
    """`StandInRemoteApi` whose listening socket is wrapped in TLS (TLS ≥ 1.2, no client certificate).

    The handshake happens on the handler's thread, on first read, so a client that rejects the
    certificate never blocks the server.
    """

    def __init__(self, user: str, password: str, schema_path: Path, server: CertificateFiles) -> None:
        super().__init__(user, password, schema_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(server.certificate), str(server.key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._server.handle_error = self._quiet_about_refused_handshakes

    @staticmethod
    def _quiet_about_refused_handshakes(request: object, client_address: tuple[str, int]) -> None:
        """A client refusing the certificate is what the tests provoke; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError):
            traceback.print_exc()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"
