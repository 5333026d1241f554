"""Info-errors the broker has not taken yet, kept in the Dagster instance until it does.

Each info-error is published with publisher confirms and `mandatory`. One the broker does not take
(down, no queue bound to the error routing key, the exchange missing) is kept here and the sensor
reads on: later ticks publish the kept ones, oldest first. The keys of the last ones published are
kept too, so that a message read a second time (the daemon died before it stored the cursor, or
before the ack) is not reported twice.

The instance's key-value store holds an index (what waits, what was published) under
`bpsync/info_errors/<sensor>` and each waiting info-error's body under `…/<slot>`.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bpsync_dagster.broker.client import BrokerError, BrokerSession, InfoErrorNotPublished

MAX_WAITING = 1000
REMEMBERED_KEYS = 1000


class KeyValueStore(Protocol):
    """Dagster's run storage key-value table."""

    def get_cursor_values(self, keys: set[str]) -> Mapping[str, str]: ...

    def set_cursor_values(self, pairs: Mapping[str, str]) -> None: ...


class TooManyWaiting(BrokerError):
    """So many info-errors wait for the broker that reading stops until it takes them."""


@dataclass(frozen=True)
class InfoError:
    """The info-error answering one message; `key` names the message (its run key)."""

    key: str
    body: bytes
    correlation_id: str | bytes | None


def outbox_key(sensor_name: str) -> str:
    """Where the sensor's outbox index lies in the key-value store."""
    return f"bpsync/info_errors/{sensor_name}"


def _encode_correlation_id(correlation_id: str | bytes | None) -> dict[str, str] | None:
    if correlation_id is None:
        return None
    if isinstance(correlation_id, bytes):
        return {"hex": correlation_id.hex()}
    return {"text": correlation_id}


def _decode_correlation_id(stored: dict[str, str] | None) -> str | bytes | None:
    if stored is None:
        return None
    return bytes.fromhex(stored["hex"]) if "hex" in stored else stored["text"]


class InfoErrorOutbox:
    """The info-errors of one sensor; `refusal` says why the broker last refused one in this tick."""

    def __init__(self, store: KeyValueStore, sensor_name: str, log: logging.Logger) -> None:
        self._store = store
        self._index_key = outbox_key(sensor_name)
        self._log = log
        stored = store.get_cursor_values({self._index_key}).get(self._index_key)
        index = json.loads(stored) if stored else {}
        self._waiting: list[dict] = index.get("waiting", [])
        self._published: list[str] = index.get("published", [])
        self.refusal: str | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def send(self, session: BrokerSession, error: InfoError) -> bool:
        """Publish `error` once; True when it is published (now or before), False when it waits.

        Once the broker has refused one in this tick, the rest wait without being tried.
        """
        if error.key in self._published:
            return True
        if any(entry["key"] == error.key for entry in self._waiting):
            return False
        if self.refusal is None and self._publish(session, error.body, error.correlation_id):
            self._remember(error.key)
            self._save_index()
            return True
        self._keep(error)
        return False

    def retry(self, session: BrokerSession) -> int:
        """Publish the waiting info-errors, oldest first, until the broker refuses one; how many it took.

        The refused one goes to the back, so that one the broker will never take cannot hold up the rest.
        """
        published = 0
        while self._waiting and self.refusal is None:
            entry = self._waiting.pop(0)
            slot_key = f"{self._index_key}/{entry['slot']}"
            body = self._store.get_cursor_values({slot_key}).get(slot_key, "").encode()
            if self._publish(session, body, _decode_correlation_id(entry["correlation_id"])):
                self._remember(entry["key"])
                self._store.set_cursor_values({slot_key: ""})
                published += 1
            else:
                self._waiting.append(entry)
            self._save_index()
        if published:
            self._log.info(f"{published} waiting info-errors published; {len(self._waiting)} still wait")
        return published

    def _publish(self, session: BrokerSession, body: bytes, correlation_id: str | bytes | None) -> bool:
        try:
            session.publish_error(body, correlation_id)
        except InfoErrorNotPublished as refusal:
            self.refusal = str(refusal)
            self._log.error(f"info-error not published: {refusal}; it waits and is published on a later tick")
            return False
        return True

    def _keep(self, error: InfoError) -> None:
        if len(self._waiting) >= MAX_WAITING:
            raise TooManyWaiting(
                f"{len(self._waiting)} info-errors wait for the broker ({self.refusal}); "
                "no message is read until it takes them"
            )
        used = {entry["slot"] for entry in self._waiting}
        slot = next(number for number in range(len(used) + 1) if number not in used)
        self._store.set_cursor_values({f"{self._index_key}/{slot}": error.body.decode()})
        self._waiting.append(
            {"key": error.key, "slot": slot, "correlation_id": _encode_correlation_id(error.correlation_id)}
        )
        self._save_index()

    def _remember(self, key: str) -> None:
        self._published = [*self._published, key][-REMEMBERED_KEYS:]

    def _save_index(self) -> None:
        index = {"waiting": self._waiting, "published": self._published}
        self._store.set_cursor_values({self._index_key: json.dumps(index)})
