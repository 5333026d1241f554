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
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


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


def _answer(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    encoded = body.encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(encoded)))])
    return [encoded]


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

        Only the running server is armed, and only once. The returned event is set once the server
        is back.
        """
        armed = threading.Lock()
        outage_began = threading.Event()
        server_back = threading.Event()

        def outage() -> None:
            self.stop()
            outage_began.set()
            time.sleep(seconds)
            self.start()
            server_back.set()

        def begin_outage(start_response: StartResponse) -> Iterable[bytes] | None:
            if not armed.acquire(blocking=False):
                return None
            threading.Thread(target=outage, name="s3-outage", daemon=True).start()
            if not outage_began.wait(timeout=60):
                raise RuntimeError("the S3 server did not stop within 60 s for the outage")
            return _answer(start_response, "503 Service Unavailable", "")

        self._intercept_upload_parts(part_number, begin_outage)
        return server_back

    def hold_upload_parts(self) -> PartGate:
        """Hold every part upload that arrives, unanswered, until the returned gate is opened."""
        gate = PartGate()

        def hold(_start_response: StartResponse) -> None:
            gate.pass_through()

        self._intercept_upload_parts(None, hold)
        return gate

    def refuse_upload_part(self, part_number: int) -> None:
        """Answer every upload of part `part_number` 403 AccessDenied, which no client retries."""
        self._intercept_upload_parts(
            part_number, lambda start_response: _answer(start_response, "403 Forbidden", ACCESS_DENIED)
        )

    def _intercept_upload_parts(
        self, part_number: int | None, handle: Callable[[StartResponse], Iterable[bytes] | None]
    ) -> None:
        """Let `handle` answer uploads of part `part_number` (of any part if None) on the running
        server; where it returns None the request goes on to S3."""
        listener = self._listener()
        app: WsgiApp = listener.app

        def intercepting_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            if _is_upload_part(environ, part_number):
                answer = handle(start_response)
                if answer is not None:
                    return answer
            return app(environ, start_response)

        listener.app = intercepting_app

    def _listener(self) -> Any:
        assert self._server is not None and self._server._server is not None
        return self._server._server
