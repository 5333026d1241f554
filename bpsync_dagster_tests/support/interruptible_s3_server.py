"""An S3Server whose `stop()` is a real outage: established connections are cut as well.

Moto's threaded server speaks HTTP/1.1, so a client's pooled keep-alive connections stay served by
their handler threads after `S3Server.stop()` closes the listening socket; a client in the middle
of an upload would not notice the outage at all. This server remembers every connection it accepts
and shuts them down on `stop()`.

`outage_at_upload_part()` and `hold_upload_parts()` act exactly when parts of a multipart upload
arrive, so a test never races the upload it means to interrupt or observe.
"""

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from bpsync_dagster_tests.support.s3_server import S3Server

ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PartGate:
    """Part uploads wait here while the gate is closed; once opened, they and all later ones go on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._held = 0
        self._opened = False

    @property
    def held(self) -> int:
        """Part uploads waiting now."""
        with self._condition:
            return self._held

    def wait_until_held(self, count: int, timeout: float) -> bool:
        """Whether `count` part uploads came to wait within `timeout` seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: self._held >= count, timeout=timeout)

    def open(self) -> None:
        with self._condition:
            self._opened = True
            self._condition.notify_all()

    def pass_through(self) -> None:
        with self._condition:
            self._held += 1
            self._condition.notify_all()
            self._condition.wait_for(lambda: self._opened)
            self._held -= 1


def _is_upload_part(environ: dict[str, Any], part_number: int | None = None) -> bool:
    """Whether the request uploads a part of a multipart upload (that part, if `part_number` is given)."""
    numbers = parse_qs(environ.get("QUERY_STRING", "")).get("partNumber")
    return environ["REQUEST_METHOD"] == "PUT" and numbers is not None and part_number in (None, int(numbers[0]))


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

    def hold_upload_parts(self) -> "PartGate":
        """Hold every part upload that arrives, unanswered, until the returned gate is opened."""
        gate = PartGate()
        listener = self._listener()
        app: WsgiApp = listener.app

        def holding_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if _is_upload_part(environ):
                gate.pass_through()
            return app(environ, start_response)

        listener.app = holding_app
        return gate

    def refuse_upload_part(self, part_number: int) -> None:
        """Answer every upload of part `part_number` 403 AccessDenied, which no client retries."""
        listener = self._listener()
        app: WsgiApp = listener.app

        def refusing_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if _is_upload_part(environ, part_number):
                body = ACCESS_DENIED.encode()
                start_response(
                    "403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                )
                return [body]
            return app(environ, start_response)

        listener.app = refusing_app

    def _on_first_upload_part(self, part_number: int, react: Callable[[], None]) -> None:
        """Run `react` when part `part_number` of an upload first arrives, then answer it 503.

        Only the running server is armed, and only once: a later upload of that part, or the server
        after a restart, is answered normally.
        """
        listener = self._listener()
        app: WsgiApp = listener.app
        armed = threading.Lock()

        def tripping_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if _is_upload_part(environ, part_number) and armed.acquire(blocking=False):
                react()
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            return app(environ, start_response)

        listener.app = tripping_app

    def _listener(self) -> Any:
        assert self._server is not None and self._server._server is not None
        return self._server._server
