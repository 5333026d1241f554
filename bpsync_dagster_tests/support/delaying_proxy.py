"""A TCP proxy on loopback between the service and RabbitMQ that hands on what the broker sends late.

What the client sends reaches the broker at once; what the broker sends is held: each piece (what
one read of the socket returned, or with `Pacing.by_frame` each AMQP frame) `Pacing.delay` seconds
(plus a random 0 to `Pacing.jitter`) after it arrived, and pieces are handed on at least `Pacing.gap`
seconds apart, in order. That is a loaded broker or a congested link: every answer is late, and a
burst of deliveries trickles in (a delivery is three frames: method, header, body). With
`Pacing.only_deliveries` only the frame that starts a delivery is held; the frames after it wait
only for it, so each delivery, and no other answer, is late.

With `slow_consumers` the proxy reads the AMQP frames instead of passing bytes: only what the broker
sends on a channel after it confirmed a `basic.consume` whose `x-stream-offset` argument satisfies
the predicate (e.g. `lambda offset: offset == "last"`) is held, everything else passes at once. That
is one slow read on an otherwise prompt broker.

Threads only; `slowing` can be switched off (and on) while connections are open.
"""

import heapq
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import pika.frame
import pika.spec

CONSUMER_OFFSET = "x-stream-offset"


@dataclass(frozen=True)
class Pacing:
    """How late the broker's bytes are handed on."""

    delay: float = 1.0
    gap: float = 0.6
    jitter: float = 0.0
    by_frame: bool = False
    only_deliveries: bool = False

    def hold(self, rng: random.Random) -> float:
        return self.delay + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)


def _split_frames(buffer: bytes) -> tuple[list[tuple[bytes, pika.frame.Frame]], bytes]:
    """The complete AMQP frames at the start of `buffer` (raw bytes and decoded), and the rest."""
    frames = []
    while True:
        consumed, frame = pika.frame.decode_frame(buffer)
        if frame is None:
            return frames, buffer
        frames.append((buffer[:consumed], frame))
        buffer = buffer[consumed:]


def _starts_delivery(frame: pika.frame.Frame) -> bool:
    return isinstance(frame, pika.frame.Method) and isinstance(
        frame.method, (pika.spec.Basic.Deliver, pika.spec.Basic.GetOk)
    )


class _Link:
    """One client connection and its broker connection: a pump each way and a pacer for held pieces."""

    def __init__(self, proxy: "DelayingProxy", client: socket.socket, broker: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._broker = broker
        self._send_lock = threading.Lock()
        self._due: list[tuple[float, int, bytes]] = []
        self._due_ready = threading.Condition()
        self._last_due = 0.0
        self._sequence = 0
        self._closed = False
        self._asked_slow: set[int] = set()
        self._slow_channels: set[int] = set()
        self._channel_lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._upstream, name="proxy-upstream", daemon=True),
            threading.Thread(target=self._downstream, name="proxy-downstream", daemon=True),
            threading.Thread(target=self._pace, name="proxy-pacer", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        with self._due_ready:
            self._closed = True
            self._due_ready.notify_all()
        for sock in (self._client, self._broker):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _upstream(self) -> None:
        """Client → broker, unchanged; in frame mode, notes the channels whose consume is to be slow."""
        buffer = b""
        try:
            while data := self._client.recv(65536):
                self._broker.sendall(data)
                if self._proxy.slow_consumers is not None:
                    buffer = self._note_client_frames(buffer + data)
        except OSError:
            pass
        self.close()

    def _note_client_frames(self, buffer: bytes) -> bytes:
        frames, rest = _split_frames(buffer)
        for _, frame in frames:
            if not isinstance(frame, pika.frame.Method):
                continue
            with self._channel_lock:
                if isinstance(frame.method, pika.spec.Channel.Open):
                    self._asked_slow.discard(frame.channel_number)
                    self._slow_channels.discard(frame.channel_number)
                elif isinstance(frame.method, pika.spec.Basic.Consume):
                    offset = (frame.method.arguments or {}).get(CONSUMER_OFFSET)
                    assert self._proxy.slow_consumers is not None
                    if self._proxy.slow_consumers(offset):
                        self._asked_slow.add(frame.channel_number)
        return rest

    def _downstream(self) -> None:
        """Broker → client: held and paced (all of it, or in frame mode the frames of slow channels)."""
        buffer = b""
        try:
            while data := self._broker.recv(65536):
                if self._proxy.slow_consumers is not None:
                    buffer = self._route_broker_frames(buffer + data)
                elif self._proxy.pacing.by_frame or self._proxy.pacing.only_deliveries:
                    frames, buffer = _split_frames(buffer + data)
                    for raw, frame in frames:
                        self._hold(raw, held=not self._proxy.pacing.only_deliveries or _starts_delivery(frame))
                else:
                    self._hold(data)
        except OSError:
            pass
        self._hold(b"")  # the end of the broker's stream reaches the client after what it sent

    def _route_broker_frames(self, buffer: bytes) -> bytes:
        frames, rest = _split_frames(buffer)
        for raw, frame in frames:
            with self._channel_lock:
                slow = frame.channel_number in self._slow_channels
                if isinstance(frame, pika.frame.Method) and isinstance(frame.method, pika.spec.Basic.ConsumeOk):
                    if frame.channel_number in self._asked_slow:
                        self._slow_channels.add(frame.channel_number)
            if slow:
                self._hold(raw)
            else:
                with self._send_lock:
                    self._client.sendall(raw)
        return rest

    def _hold(self, piece: bytes, held: bool = True) -> None:
        """Queue `piece` for the client: `held` pieces wait their pacing, the others only for those before them."""
        now = time.monotonic()
        pacing = self._proxy.pacing
        with self._due_ready:
            if self._proxy.slowing and held:
                due = max(now + pacing.hold(self._proxy.rng), self._last_due + pacing.gap)
            else:
                due = max(now, self._last_due)
            self._last_due = due
            self._sequence += 1
            heapq.heappush(self._due, (due, self._sequence, piece))
            self._due_ready.notify_all()

    def _pace(self) -> None:
        while True:
            with self._due_ready:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._due_ready.wait(wait)
                if self._closed:
                    return
                _, _, piece = heapq.heappop(self._due)
            try:
                if not piece:
                    self._client.shutdown(socket.SHUT_WR)
                    return
                with self._send_lock:
                    self._client.sendall(piece)
            except OSError:
                self.close()
                return


class DelayingProxy:
    """Listens on 127.0.0.1:`port` and forwards each connection to 127.0.0.1:`upstream_port`."""

    def __init__(
        self,
        upstream_port: int,
        pacing: Pacing = Pacing(),
        slow_consumers: Callable[[object], bool] | None = None,
        seed: int | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.pacing = pacing
        self.slow_consumers = slow_consumers
        self.slowing = True
        self.rng = random.Random(seed)
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="proxy-acceptor", daemon=True)

    def start(self) -> "DelayingProxy":
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        for link in self._links:
            link.close()
        for link in self._links:
            for thread in link.threads:
                thread.join(timeout=5)

    def __enter__(self) -> "DelayingProxy":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            broker.settimeout(None)
            client.settimeout(None)
            for sock in (client, broker):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, broker)
            self._links.append(link)
            self.connections += 1
            link.start()
