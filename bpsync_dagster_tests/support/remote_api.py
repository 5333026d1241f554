"""A stand-in for the remote Bigpicture sync API (`POST /dataset`), with injectable faults.

As a script it serves until Ctrl-C and prints every accepted body as one JSON line:
`python -m bpsync_dagster_tests.support.remote_api --port 8080 --user U --password P --schema PATH`
"""

import argparse
import base64
import binascii
import hmac
import json
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema
from jsonschema.exceptions import best_match

from bpsync_dagster_tests.support.lifecycle import StartedService

LOG = logging.getLogger(__name__)


LOGIN_PATH = "/login"
LOGIN_PAGE = b"<html><body><form action='/login' method='post'>Sign in</form></body></html>"


@dataclass(frozen=True)
class _Fault:
    kind: Literal["status", "close", "hang", "redirect"]
    status: int = 500
    seconds: float = 0.0
    location: str = ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, api: "StandInRemoteApi") -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        """The login page a redirect leads to answers 200; other GETs meet the queued faults, then 405."""
        if urlsplit(self.path).path == LOGIN_PATH:
            self._send(200, "text/html", LOGIN_PAGE)
            return
        fault = self.server.api._next_fault(kinds=("redirect",))
        if fault is not None:
            self._redirect(fault)
            return
        self._reply(405, {"error": "POST only"})

    def do_POST(self) -> None:
        api = self.server.api
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = api._next_fault()
        if fault is not None and fault.kind == "redirect":
            api._record_outcome(body, accepted=False)
            self._redirect(fault)
            return
        if fault is not None and fault.kind == "close":
            api._record_outcome(body, accepted=False)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            api._record_outcome(body, accepted=False)
            self._reply(fault.status, {"error": "injected failure"})
            return
        if fault is not None and api._stopping.wait(fault.seconds):
            self.close_connection = True
            return
        status, answer = api._handle(urlsplit(self.path).path, self.headers.get("Authorization"), body)
        api._record_outcome(body, accepted=status == 200)
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, str] | None) -> None:
        payload = b"" if answer is None else json.dumps(answer).encode()
        headers = {"WWW-Authenticate": 'Basic realm="sync"'} if status == 401 else {}
        self._send(status, "application/json", payload, headers)

    def _redirect(self, fault: _Fault) -> None:
        # http.server writes header values in Latin-1: these are the location's UTF-8 bytes.
        self._send(fault.status, "text/plain", b"moved", {"Location": fault.location.encode().decode("latin-1")})

    def _send(self, status: int, content_type: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        LOG.info("%s %s", self.address_string(), format % args)


class StandInRemoteApi(StartedService):
    """HTTP server on 127.0.0.1 that checks Basic auth and validates bodies against file-sync.json.

    Every request counts in `attempts` (but a GET of the login page); accepted bodies land in
    `received`. Queued faults apply to the next requests in order, before any check: an HTTP status,
    a redirect, a closed connection without an answer, or a delay after which the request is handled
    normally. A GET meets only redirects; otherwise it is answered 405.
    """

    def __init__(
        self,
        user: str,
        password: str,
        schema_path: Path,
        *,
        port: int = 0,
        on_accept: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        schema = json.loads(Path(schema_path).read_text())
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        self._validator = validator_class(schema)
        self._credentials = f"{user}:{password}".encode()
        self._on_accept = on_accept
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._received: list[dict[str, Any]] = []
        self._attempts = 0
        self._attempt_times: list[float] = []
        self._last_accepted: dict[str, bool] = {}
        self._stopping = threading.Event()
        self._server = _Server(port, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """Base URL, without path."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def received(self) -> list[dict[str, Any]]:
        """Accepted bodies so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def attempts(self) -> int:
        """Requests received so far, including rejected and faulted ones."""
        with self._lock:
            return self._attempts

    @property
    def attempt_times(self) -> list[float]:
        """`time.monotonic()` at the arrival of each request so far (its body read), oldest first."""
        with self._lock:
            return list(self._attempt_times)

    @property
    def datasets_last_refused(self) -> set[str]:
        """Datasets whose latest request was refused or faulted (by the `dataset_id` of its body)."""
        with self._lock:
            return {dataset_id for dataset_id, accepted in self._last_accepted.items() if not accepted}

    @property
    def faults_pending(self) -> int:
        """Queued faults not yet applied to a request."""
        with self._lock:
            return len(self._faults)

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status`."""
        self._queue(_Fault("status", status=status), count)

    def fail_next_by_closing(self, count: int) -> None:
        """Close the connection of the next `count` requests without answering."""
        self._queue(_Fault("close"), count)

    def redirect_next(self, count: int, status: int = 302, location: str | None = None) -> None:
        """Answer the next `count` requests with a redirect, by default to a login page that answers
        GET with 200 (as a single sign-on proxy in front of the API would)."""
        self._queue(_Fault("redirect", status=status, location=location or f"{self.url}{LOGIN_PATH}"), count)

    def fail_next_by_hanging(self, count: int, seconds: float) -> None:
        """Wait `seconds` before handling each of the next `count` requests (dropped if stopped meanwhile)."""
        self._queue(_Fault("hang", seconds=seconds), count)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut short any hanging request and release the port."""
        self._stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def _queue(self, fault: _Fault, count: int) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def _next_fault(self, kinds: tuple[str, ...] = ("status", "close", "hang", "redirect")) -> _Fault | None:
        """Count the request; the next queued fault if it is of one of `kinds` (else it stays queued)."""
        with self._lock:
            self._attempts += 1
            self._attempt_times.append(time.monotonic())
            return self._faults.popleft() if self._faults and self._faults[0].kind in kinds else None

    def _record_outcome(self, body: bytes, *, accepted: bool) -> None:
        try:
            dataset_id = json.loads(body).get("dataset_id")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return
        if isinstance(dataset_id, str):
            with self._lock:
                self._last_accepted[dataset_id] = accepted

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            return False
        return hmac.compare_digest(credentials, self._credentials)

    def _handle(self, path: str, authorization: str | None, body: bytes) -> tuple[int, dict[str, str] | None]:
        if path != "/dataset":
            return 404, {"error": f"no such endpoint: {path}"}
        if not self._authorized(authorization):
            return 401, {"error": "unauthorized"}
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return 400, {"error": "body is not JSON", "reason": str(exc)}
        error = best_match(self._validator.iter_errors(document))
        if error is not None:
            location = "/".join(str(part) for part in error.absolute_path)
            return 400, {"error": "json validation failed", "reason": f"at /{location}: {error.message}"}
        with self._lock:
            self._received.append(document)
        if self._on_accept is not None:
            self._on_accept(document)
        return 200, None


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in until Ctrl-C, printing each accepted body as a JSON line on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--schema", type=Path, required=True, help="path of bigpicture/file-sync.json")
    args = parser.parse_args(argv)
    # A shell that starts a command in the background makes it ignore SIGINT: Ctrl-C must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    api = StandInRemoteApi(
        args.user,
        args.password,
        args.schema,
        port=args.port,
        on_accept=lambda body: print(json.dumps(body), flush=True),
    )
    with api:
        LOG.info("stand-in sync API listening on %s/dataset", api.url)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
