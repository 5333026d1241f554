"""An S3Server whose `stop()` is a real outage: established connections are cut as well.

Moto's threaded server speaks HTTP/1.1, so a client's pooled keep-alive connections stay served by
their handler threads after `S3Server.stop()` closes the listening socket; a client in the middle
of an upload would not notice the outage at all. This server remembers every connection it accepts
and shuts them down on `stop()`.

`outage_at_upload_part()` and `stall_at_upload_part()` act exactly when a chosen part of a
multipart upload arrives, so a test never races the upload it means to interrupt.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from bpsync_dagster_tests.support.s3_server import S3Server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class UploadStall:
    """A held upload part: `arrived` is set when it comes in; set `released` to let it be answered."""

    arrived: threading.Event
    released: threading.Event


class InterruptibleS3Server(S3Server):
    def __init__(self) -> None:
        super().__init__()
        self._connections: list[socket.socket] = []
        self._connections_lock = threading.Lock()

    def start(self) -> None:
        super().start()
        listener = self._listener()
        accept = listener.get_request

        def remembering_accept() -> tuple[socket.socket, object]:
            connection, address = accept()
            with self._connections_lock:
                self._connections.append(connection)
            return connection, address

        listener.get_request = remembering_accept

    def stop(self) -> None:
        super().stop()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def outage_at_upload_part(self, part_number: int, seconds: float) -> threading.Event:
        """Go down for `seconds` when part `part_number` of an upload first arrives, unanswered.

        The returned event is set once the server is back.
        """
        outage_began = threading.Event()
        server_back = threading.Event()

        def outage() -> None:
            self.stop()
            outage_began.set()
            time.sleep(seconds)
            self.start()
            server_back.set()

        def begin_outage() -> None:
            threading.Thread(target=outage, name="s3-outage", daemon=True).start()
            outage_began.wait()

        self._on_first_upload_part(part_number, begin_outage)
        return server_back

    def stall_at_upload_part(self, part_number: int) -> UploadStall:
        """Hold part `part_number` of an upload unanswered, when it first arrives, until released."""
        stall = UploadStall(threading.Event(), threading.Event())

        def hold() -> None:
            stall.arrived.set()
            stall.released.wait()

        self._on_first_upload_part(part_number, hold)
        return stall

    def _on_first_upload_part(self, part_number: int, react: Callable[[], None]) -> None:
        """Run `react` when part `part_number` of an upload first arrives, then answer it 503.

        Only the running server is armed, and only once: a later upload of that part, or the server
        after a restart, is answered normally.
        """
        listener = self._listener()
        app: WsgiApp = listener.app
        armed = threading.Lock()

        def tripping_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            is_part = environ["REQUEST_METHOD"] == "PUT" and query.get("partNumber") == [str(part_number)]
            if is_part and armed.acquire(blocking=False):
                react()
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            return app(environ, start_response)

        listener.app = tripping_app

    def _listener(self) -> Any:
        assert self._server is not None and self._server._server is not None
        return self._server._server
