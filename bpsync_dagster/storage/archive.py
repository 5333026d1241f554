"""The archive storage, read side: find a file's body by its `archive_location` and stream it."""

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bpsync_dagster.configuration import PosixStorage, S3Storage, StorageSettings
from bpsync_dagster.sda_database import FileRecord
from bpsync_dagster.storage.errors import StorageError
from bpsync_dagster.storage.s3_client import make_s3_client, s3_reachability
from bpsync_dagster.storage.s3_errors import s3_cause, s3_error


class ArchivedBody(Protocol):
    """Where one archived body lives."""

    def describe(self) -> str: ...

    def size(self) -> int: ...

    def open(self) -> AbstractContextManager[BinaryIO]: ...


class PosixArchivedBody:
    def __init__(self, root: Path, relative_path: str) -> None:
        path = (root / relative_path.lstrip("/")).resolve()
        if not path.is_relative_to(root.resolve()):
            raise StorageError(f"archive_file_path {relative_path!r} leaves the archive directory {root}")
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError as error:
            raise StorageError(f"archived body {self.path} does not exist") from error
        except OSError as error:
            raise StorageError(f"archived body {self.path} cannot be read: {error.strerror}") from error

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        try:
            stream = self.path.open("rb")
        except OSError as error:
            raise StorageError(f"archived body {self.path} cannot be opened: {error.strerror}") from error
        with stream:
            yield stream


class S3ArchivedBody:
    """An archived object; once sized, it is read as the version sized (its ETag), or not at all."""

    def __init__(self, client: BaseClient, endpoint_url: str, bucket: str, key: str) -> None:
        self._client = client
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.key = key
        self.etag: str | None = None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def size(self) -> int:
        try:
            found = self._client.head_object(Bucket=self.bucket, Key=self.key)
        except (ClientError, BotoCoreError) as error:
            raise s3_error(error, f"archived body {self.describe()}") from s3_cause(error)
        self.etag = str(found["ETag"])
        return int(found["ContentLength"])

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        version = {"IfMatch": self.etag} if self.etag else {}
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key, **version)
        except (ClientError, BotoCoreError) as error:
            raise s3_error(error, f"archived body {self.describe()}") from s3_cause(error)
        body = response["Body"]
        try:
            yield body
        finally:
            body.close()


class ArchiveStorage:
    """Every archive entry; a file's entry is the one its `archive_location` names."""

    def __init__(self, settings: StorageSettings) -> None:
        self._posix: dict[str, PosixStorage] = {_normalise(str(entry.path)): entry for entry in settings.posix}
        self._s3: list[tuple[S3Storage, BaseClient]] = [(entry, make_s3_client(entry)) for entry in settings.s3]

    def body(self, record: FileRecord) -> ArchivedBody:
        location = _normalise(record.archive_location)
        posix = self._posix.get(location)
        if posix is not None:
            return PosixArchivedBody(posix.path, record.archive_file_path)
        for entry, client in self._s3:
            for endpoint in {_normalise(entry.endpoint), _normalise(entry.endpoint_url)}:
                bucket = _bucket_of(location, endpoint)
                if bucket:
                    return S3ArchivedBody(client, entry.endpoint_url, bucket, record.archive_file_path)
        raise StorageError(
            f"archive_location {record.archive_location!r} matches no storage.archive entry "
            "(a posix path or an s3 endpoint/bucket)"
        )

    def check(self) -> list[tuple[str, str]]:
        """Each entry and `ok` or why it is not usable, for `bpsync check`."""
        results = [
            (f"archive posix {path}", "ok" if os.access(entry.path, os.R_OK | os.X_OK) else "not a readable directory")
            for path, entry in self._posix.items()
        ]
        results += [(f"archive s3 {entry.endpoint}", s3_reachability(client)) for entry, client in self._s3]
        return results


def _normalise(location: str) -> str:
    return location.rstrip("/")


def _bucket_of(location: str, endpoint: str) -> str | None:
    prefix = endpoint + "/"
    if not location.startswith(prefix):
        return None
    bucket = location[len(prefix) :]
    return bucket if bucket and "/" not in bucket else None
