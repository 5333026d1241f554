"""An S3Server whose `stop()` is a real outage: established connections are cut as well.

Moto's threaded server speaks HTTP/1.1, so a client's pooled keep-alive connections stay served by
their handler threads after `S3Server.stop()` closes the listening socket; a client in the middle
of an upload would not notice the outage at all. This server remembers every connection it accepts
and shuts them down on `stop()`.
"""

import socket
import threading

from bpsync_dagster_tests.support.s3_server import S3Server


class InterruptibleS3Server(S3Server):
    def __init__(self) -> None:
        super().__init__()
        self._connections: list[socket.socket] = []
        self._connections_lock = threading.Lock()

    def start(self) -> None:
        super().start()
        assert self._server is not None and self._server._server is not None
        listener = self._server._server
        accept = listener.get_request

        def remembering_accept() -> tuple[socket.socket, object]:
            connection, address = accept()
            with self._connections_lock:
                self._connections.append(connection)
            return connection, address

        listener.get_request = remembering_accept  # type: ignore[method-assign]

    def stop(self) -> None:
        super().stop()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
