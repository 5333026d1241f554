"""Read-only access to the SDA database."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from bpsync_dagster.configuration import DatabaseSettings
from bpsync_dagster.sda_database.records import FileRecord

MINIMUM_SCHEMA_VERSION = 23

_FILE_COLUMNS = """
    f.stable_id,
    f.submission_user,
    f.submission_file_path,
    f.archive_location,
    f.archive_file_path,
    f.archive_file_size,
    f.header,
    (SELECT c.checksum FROM sda.checksums c
      WHERE c.file_id = f.id AND c.type = 'SHA256' AND c.source = 'UNENCRYPTED'
      ORDER BY c.id DESC LIMIT 1),
    (SELECT c.checksum FROM sda.checksums c
      WHERE c.file_id = f.id AND c.type = 'SHA256' AND c.source = 'ARCHIVED'
      ORDER BY c.id DESC LIMIT 1),
    ARRAY(SELECT d.stable_id FROM sda.file_dataset fd JOIN sda.datasets d ON d.id = fd.dataset_id
           WHERE fd.file_id = f.id ORDER BY d.stable_id)
"""
FILES_BY_ACCESSION = f"SELECT {_FILE_COLUMNS} FROM sda.files f WHERE f.stable_id = ANY(%s) ORDER BY f.stable_id"
FILES_OF_DATASET = f"""
SELECT {_FILE_COLUMNS}
  FROM sda.files f
 WHERE f.id IN (SELECT fd.file_id FROM sda.file_dataset fd JOIN sda.datasets d ON d.id = fd.dataset_id
                 WHERE d.stable_id = %s)
 ORDER BY f.stable_id
"""
LOCAL_DATASETS = """
SELECT d.stable_id FROM sda.datasets d WHERE left(d.stable_id, length(%(prefix)s)) = %(prefix)s ORDER BY d.stable_id
"""
FILES_OF_LOCAL_DATASETS = f"""
SELECT d.stable_id, {_FILE_COLUMNS}
  FROM sda.datasets d
  JOIN sda.file_dataset fd ON fd.dataset_id = d.id
  JOIN sda.files f ON f.id = fd.file_id
 WHERE left(d.stable_id, length(%(prefix)s)) = %(prefix)s
 ORDER BY d.stable_id, f.stable_id
"""


class DatabaseError(Exception):
    """The SDA database is unreachable or refused a query; a retry may help."""


class SchemaVersionError(DatabaseError):
    """The SDA database's schema is older than this service needs; retrying cannot help."""


class SdaDatabase:
    """Queries of the tables `sda.files`, `sda.checksums`, `sda.datasets` and `sda.file_dataset`."""

    def __init__(self, settings: DatabaseSettings, connect_timeout_seconds: int = 10) -> None:
        self._settings = settings
        self._connect_timeout_seconds = connect_timeout_seconds

    def describe(self) -> str:
        return f"{self._settings.user}@{self._settings.host}:{self._settings.port}/{self._settings.database}"

    def _connection_parameters(self) -> dict[str, object]:
        settings = self._settings
        parameters: dict[str, object] = {
            "host": settings.host,
            "port": settings.port,
            "user": settings.user,
            "dbname": settings.database,
            "sslmode": settings.sslmode,
            "connect_timeout": self._connect_timeout_seconds,
            "application_name": "bpsync",
        }
        if settings.password:
            parameters["password"] = settings.password
        optional = {"sslrootcert": settings.ca_cert, "sslcert": settings.client_cert, "sslkey": settings.client_key}
        parameters.update({name: str(path) for name, path in optional.items() if path is not None})
        return parameters

    @contextmanager
    def connect(self) -> Iterator[psycopg2.extensions.connection]:
        try:
            connection = psycopg2.connect(**self._connection_parameters())
        except psycopg2.OperationalError as error:
            raise DatabaseError(f"cannot connect to the SDA database {self.describe()}: {_first_line(error)}") from None
        try:
            connection.set_session(readonly=True, autocommit=True)
            yield connection
        finally:
            connection.close()

    def check_schema_version(self, connection: psycopg2.extensions.connection) -> int:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT MAX(version) FROM sda.dbschema_version")
                (version,) = cursor.fetchone()
        except psycopg2.Error as error:
            raise DatabaseError(
                f"cannot read sda.dbschema_version in {self.describe()}: {_first_line(error)}"
            ) from None
        if version is None or version < MINIMUM_SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the SDA database {self.describe()} has schema version {version}; at least {MINIMUM_SCHEMA_VERSION} is required"
            )
        return version

    def file_records(self, dataset_id: str, accession_ids: list[str]) -> list[FileRecord]:
        """Records of the given files, or of every file of the dataset when none are given; one query."""
        if accession_ids:
            rows = self._query(f"dataset {dataset_id}: query of sda.files", FILES_BY_ACCESSION, (list(accession_ids),))
        else:
            rows = self._query(f"dataset {dataset_id}: query of sda.files", FILES_OF_DATASET, (dataset_id,))
        return [_record(row) for row in rows]

    def local_datasets(self, center_prefix: str) -> list[str]:
        """IDs of the datasets minted here (those starting with `center_prefix`)."""
        rows = self._query("query of sda.datasets", LOCAL_DATASETS, {"prefix": center_prefix})
        return [row[0] for row in rows]

    def local_dataset_files(self, center_prefix: str) -> dict[str, list[FileRecord]]:
        """The file records of every dataset minted here, by dataset ID; one query."""
        files: dict[str, list[FileRecord]] = {dataset_id: [] for dataset_id in self.local_datasets(center_prefix)}
        for row in self._query("query of sda.files", FILES_OF_LOCAL_DATASETS, {"prefix": center_prefix}):
            files.setdefault(row[0], []).append(_record(row[1:]))
        return files

    def _query(self, what: str, statement: str, parameters: object) -> list[tuple]:
        with self.connect() as connection:
            self.check_schema_version(connection)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(statement, parameters)
                    return cursor.fetchall()
            except psycopg2.Error as error:
                raise DatabaseError(f"{what} failed: {_first_line(error)}") from None


def _record(row: tuple) -> FileRecord:
    return FileRecord(
        accession_id=row[0],
        submission_user=row[1] or "",
        submission_file_path=row[2] or "",
        archive_location=row[3] or "",
        archive_file_path=row[4] or "",
        archive_file_size=row[5],
        header_hex=(row[6] or "").strip(),
        unencrypted_sha256=row[7],
        archived_sha256=row[8],
        datasets=tuple(row[9]),
    )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
