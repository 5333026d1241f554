"""The sync storage, write side: place objects by priority and roll-over, write them atomically.

An object becomes visible under its final name only when complete: POSIX writes a temporary file in
the same directory, fsyncs and renames it; S3 completes a multipart upload (or puts a small object)
only at the end and aborts it on failure.
"""

import os
import threading

from botocore.client import BaseClient

from bpsync_dagster.configuration import CopySettings, S3Storage, StorageSettings
from bpsync_dagster.storage.allocation import return_large_buffers_when_freed
from bpsync_dagster.storage.bandwidth_limit import BandwidthLimit
from bpsync_dagster.storage.byte_budget import ByteBudget
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.placement import Location, Placement, Usage
from bpsync_dagster.storage.posix_sync import PosixLocation
from bpsync_dagster.storage.s3_client import make_s3_client, s3_reachability
from bpsync_dagster.storage.s3_sync import PARTS_IN_FLIGHT, S3Location, existing_buckets


class SyncStorage:
    """The sync entries in priority order; S3 entries roll over across `<bucket_prefix>1..max_buckets`.

    `budget` bounds the bytes the copies through this object hold in buffers at once (see `copy_file`);
    freed buffers are returned to the system at once, so that the process's memory follows it.
    `bandwidth` caps the bytes per second they write together (0: no cap) and counts them."""

    def __init__(
        self,
        settings: StorageSettings,
        buffer_limit: int = CopySettings().buffer_limit,
        bandwidth_limit: int = CopySettings().bandwidth_limit,
    ) -> None:
        self.budget = ByteBudget(buffer_limit)
        self.bandwidth = BandwidthLimit(bandwidth_limit)
        return_large_buffers_when_freed()
        self._locations: list[Location] = []
        self._usage: dict[int, Usage] = {}
        self._lock = threading.Lock()
        self._clients: list[tuple[S3Storage, BaseClient]] = []
        for entry in settings.s3:
            if entry.writer_disabled:
                continue
            client = make_s3_client(entry)
            self._clients.append((entry, client))
            existing = existing_buckets(client, entry)
            part_slots = threading.BoundedSemaphore(PARTS_IN_FLIGHT)
            self._locations.extend(
                S3Location(
                    entry,
                    client,
                    f"{entry.bucket_prefix}{number}",
                    f"{entry.bucket_prefix}{number}" in existing,
                    part_slots,
                    self.budget,
                )
                for number in range(1, entry.max_buckets + 1)
            )
        self._locations.extend(PosixLocation(entry) for entry in settings.posix if not entry.writer_disabled)

    @property
    def posix_only(self) -> bool:
        """Whether every sync location is a POSIX directory."""
        return bool(self._locations) and all(isinstance(location, PosixLocation) for location in self._locations)

    def find(self, key: str) -> Placement | None:
        """Where an object of that name already is, in any location."""
        for location in self._locations:
            placement = location.placement(key)
            if placement.size() is not None:
                return placement
        return None

    def place(self, key: str, size: int) -> Placement:
        """Where to write `key`: where it already is, else the first location that is not full."""
        if len(self._locations) == 1 and not (self._locations[0].max_objects or self._locations[0].max_size):
            return self._locations[0].placement(key)
        existing = self.find(key)
        if existing is not None:
            return existing
        with self._lock:
            for index, location in enumerate(self._locations):
                if not (location.max_objects or location.max_size):
                    return location.placement(key)
                usage = self._usage.get(index)
                if usage is None:
                    usage = self._usage[index] = location.usage()
                if location.max_objects and usage.objects >= location.max_objects:
                    continue
                if location.max_size and usage.size >= location.max_size:
                    continue
                usage.objects += 1
                usage.size += size
                return location.placement(key)
        raise StorageError(
            f"sync storage is full: no entry of storage.sync has room for {key} (max_objects, max_size, max_buckets)"
        )

    def check(self) -> list[tuple[str, str]]:
        """Each entry and `ok` or why it is not usable, for `bpsync check`."""
        results = [(f"sync s3 {entry.endpoint}", s3_reachability(client)) for entry, client in self._clients]
        results += [
            (
                f"sync posix {location.root}",
                "ok" if os.access(location.root, os.W_OK | os.X_OK) else "not a writable directory",
            )
            for location in self._locations
            if isinstance(location, PosixLocation)
        ]
        return results
