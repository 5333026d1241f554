"""Read-only access to the SDA database."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

from bpsync_dagster.configuration import DatabaseSettings
from bpsync_dagster.errors import SyncError
from bpsync_dagster.sda_database.records import FileRecord

MINIMUM_SCHEMA_VERSION = 23

# The SDA grants its `sync` role SELECT on these tables (and `base` on dbschema_version), nothing more.
SYNC_ROLE_TABLES = ("files", "checksums", "file_dataset", "dbschema_version")
DATASETS_TABLE = "datasets"
_CHECKED_TABLES = (*SYNC_ROLE_TABLES, DATASETS_TABLE)
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_TABLE = "42P01"

# Table names are unqualified: the connection's search path is `db.schema`.
_FILE_COLUMNS = """
    f.stable_id,
    f.submission_user,
    f.submission_file_path,
    f.archive_location,
    f.archive_file_path,
    f.archive_file_size,
    f.header,
    (SELECT c.checksum FROM checksums c
      WHERE c.file_id = f.id AND c.type = 'SHA256' AND c.source = 'UNENCRYPTED'
      ORDER BY c.id DESC LIMIT 1),
    (SELECT c.checksum FROM checksums c
      WHERE c.file_id = f.id AND c.type = 'SHA256' AND c.source = 'ARCHIVED'
      ORDER BY c.id DESC LIMIT 1),
    ARRAY(SELECT fd.dataset_id::text FROM file_dataset fd WHERE fd.file_id = f.id ORDER BY fd.dataset_id)
"""
_DATASET_NAMES = """,
    ARRAY(SELECT d.stable_id FROM file_dataset fd JOIN datasets d ON d.id = fd.dataset_id
           WHERE fd.file_id = f.id ORDER BY d.stable_id)
"""
_BY_ACCESSION = "FROM files f WHERE f.stable_id = ANY(%s) ORDER BY f.stable_id"
FILES_BY_ACCESSION = f"SELECT {_FILE_COLUMNS} {_BY_ACCESSION}"
FILES_BY_ACCESSION_WITH_DATASETS = f"SELECT {_FILE_COLUMNS}{_DATASET_NAMES} {_BY_ACCESSION}"
FILES_OF_DATASET = f"""
SELECT {_FILE_COLUMNS}{_DATASET_NAMES}
  FROM files f
 WHERE f.id IN (SELECT fd.file_id FROM file_dataset fd JOIN datasets d ON d.id = fd.dataset_id
                 WHERE d.stable_id = %s)
 ORDER BY f.stable_id
"""
LOCAL_DATASETS = """
SELECT d.stable_id FROM datasets d WHERE left(d.stable_id, length(%(prefix)s)) = %(prefix)s ORDER BY d.stable_id
"""
FILES_OF_LOCAL_DATASETS = f"""
SELECT d.stable_id, {_FILE_COLUMNS}{_DATASET_NAMES}
  FROM datasets d
  JOIN file_dataset fd ON fd.dataset_id = d.id
  JOIN files f ON f.id = fd.file_id
 WHERE left(d.stable_id, length(%(prefix)s)) = %(prefix)s
 ORDER BY d.stable_id, f.stable_id
"""
_STATE = f"""
SELECT (SELECT MAX(version) FROM dbschema_version),
       {", ".join(f"has_table_privilege(to_regclass(%(schema)s || '.{table}'), 'SELECT')" for table in _CHECKED_TABLES)}
"""


class DatabaseError(SyncError):
    """The SDA database is unreachable or refused a query; a retry may help."""

    transient = True


class SchemaVersionError(DatabaseError):
    """The SDA database's schema is older than this service needs; retrying cannot help."""

    transient = False


class MissingGrantError(DatabaseError):
    """The service's database role lacks a privilege; retrying cannot help, a grant can."""

    transient = False


@dataclass(frozen=True)
class DatabaseState:
    """What the service's role finds in the SDA database: the schema version and which tables it may read."""

    schema: str
    user: str
    version: int
    readable: frozenset[str]

    @property
    def reads_datasets(self) -> bool:
        return DATASETS_TABLE in self.readable

    def missing_sync_grants(self) -> list[str]:
        return [f"{self.schema}.{table}" for table in SYNC_ROLE_TABLES if table not in self.readable]

    def require_datasets(self, needed_for: str) -> None:
        if not self.reads_datasets:
            raise MissingGrantError(
                f"{needed_for} needs SELECT on {self.schema}.{DATASETS_TABLE}, which the SDA database role "
                f"{self.user} lacks (GRANT SELECT ON {self.schema}.{DATASETS_TABLE} TO {self.user})"
            )


@dataclass(frozen=True)
class FileRecords:
    """The records of one lookup, and whether dataset names could be read for them."""

    records: list[FileRecord]
    datasets_readable: bool


class SdaDatabase:
    """Queries of the SDA tables `files`, `checksums` and `file_dataset`, and of `datasets` where granted."""

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
            "options": f"-c search_path={settings.schema}",
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
            # from None: psycopg2's connection errors may echo the connection string, password included.
            raise DatabaseError(f"cannot connect to the SDA database {self.describe()}: {_first_line(error)}") from None
        try:
            connection.set_session(readonly=True, autocommit=True)
            yield connection
        finally:
            connection.close()

    def state(self, connection: psycopg2.extensions.connection) -> DatabaseState:
        """The schema version and the role's read grants, in one query; refuses a too old schema or a
        role without the SDA `sync` role's grants."""
        schema = self._settings.schema
        try:
            with connection.cursor() as cursor:
                cursor.execute(_STATE, {"schema": schema})
                version, *readable = cursor.fetchone()
        except psycopg2.Error as error:
            if error.pgcode == INSUFFICIENT_PRIVILEGE:
                raise MissingGrantError(
                    f"the SDA database role {self._settings.user} cannot read {schema}.dbschema_version "
                    f"({_first_line(error)}); the SDA grants it through its role base"
                ) from error
            if error.pgcode == UNDEFINED_TABLE:
                raise SchemaVersionError(
                    f"the SDA database {self.describe()} has no table {schema}.dbschema_version; "
                    "db.schema (env DB_SCHEMA) names the schema of the SDA's tables"
                ) from error
            raise DatabaseError(
                f"cannot read {schema}.dbschema_version in {self.describe()}: {_first_line(error)}"
            ) from error
        if version is None or version < MINIMUM_SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the SDA database {self.describe()} has schema version {version}; at least {MINIMUM_SCHEMA_VERSION} is required"
            )
        state = DatabaseState(
            schema,
            self._settings.user,
            version,
            frozenset(table for table, granted in zip(_CHECKED_TABLES, readable, strict=True) if granted),
        )
        missing = state.missing_sync_grants()
        if missing:
            raise MissingGrantError(
                f"the SDA database role {self._settings.user} lacks SELECT on {', '.join(missing)} "
                "(the SDA grants these to its role sync)"
            )
        return state

    def file_records(self, dataset_id: str, accession_ids: list[str]) -> FileRecords:
        """Records of the given files, or of every file of the dataset when none are given; one query.

        Dataset names come with the records where the role may read `datasets`; the given files alone
        need only the SDA `sync` role's grants."""
        what = f"dataset {dataset_id}: query of {self._settings.schema}.files"
        with self.connect() as connection:
            state = self.state(connection)
            if not accession_ids:
                state.require_datasets(f"dataset {dataset_id}: finding the files of a dataset without accession IDs")
                rows = self._execute(connection, what, FILES_OF_DATASET, (dataset_id,))
            elif state.reads_datasets:
                rows = self._execute(connection, what, FILES_BY_ACCESSION_WITH_DATASETS, (list(accession_ids),))
            else:
                rows = self._execute(connection, what, FILES_BY_ACCESSION, (list(accession_ids),))
        return FileRecords([_record(row) for row in rows], state.reads_datasets)

    def local_datasets(self, center_prefix: str) -> list[str]:
        """IDs of the datasets minted here (those starting with `center_prefix`)."""
        rows = self._query_datasets("listing the local datasets", LOCAL_DATASETS, {"prefix": center_prefix})
        return [row[0] for row in rows]

    def local_dataset_files(self, center_prefix: str) -> dict[str, list[FileRecord]]:
        """The file records of every dataset minted here, by dataset ID; two queries."""
        with self.connect() as connection:
            self.state(connection).require_datasets("auditing the local datasets")
            parameters = {"prefix": center_prefix}
            datasets = self._execute(connection, "listing the local datasets", LOCAL_DATASETS, parameters)
            rows = self._execute(connection, "query of the local datasets' files", FILES_OF_LOCAL_DATASETS, parameters)
        files: dict[str, list[FileRecord]] = {row[0]: [] for row in datasets}
        for row in rows:
            files.setdefault(row[0], []).append(_record(row[1:]))
        return files

    def _query_datasets(self, what: str, statement: str, parameters: object) -> list[tuple]:
        with self.connect() as connection:
            self.state(connection).require_datasets(what)
            return self._execute(connection, what, statement, parameters)

    def _execute(
        self, connection: psycopg2.extensions.connection, what: str, statement: str, parameters: object
    ) -> list[tuple]:
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, parameters)
                return cursor.fetchall()
        except psycopg2.Error as error:
            if error.pgcode == INSUFFICIENT_PRIVILEGE:
                raise MissingGrantError(
                    f"{what}: the SDA database role {self._settings.user} was refused: {_first_line(error)}"
                ) from error
            raise DatabaseError(f"{what} failed: {_first_line(error)}") from error


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
        dataset_keys=tuple(row[9]),
        datasets=tuple(row[10]) if len(row) > 10 else None,
    )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
