"""Storage failures, split by whether trying again can help."""

from bpsync_dagster.errors import SyncError


class StorageError(SyncError):
    """A storage operation failed for good (missing object, wrong size, no room)."""


class TransientStorageError(StorageError):
    """A storage operation failed in a way a retry may fix (connection, throttling, 5xx)."""

    transient = True
