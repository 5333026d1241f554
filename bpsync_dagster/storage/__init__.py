"""Archive storage (read) and sync storage (write), POSIX and S3."""

from bpsync_dagster.storage.archive import ArchiveStorage
from bpsync_dagster.storage.errors import StorageError, TransientStorageError
from bpsync_dagster.storage.sync import SyncStorage
from bpsync_dagster.storage.transfer import CopyOutcome, copy_file

__all__ = ["ArchiveStorage", "CopyOutcome", "StorageError", "SyncStorage", "TransientStorageError", "copy_file"]
