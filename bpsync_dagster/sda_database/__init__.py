"""The SDA database: file records, checksums and dataset membership."""

from bpsync_dagster.sda_database.client import (
    DatabaseError,
    DatabaseState,
    FileRecords,
    MissingGrantError,
    SchemaVersionError,
    SdaDatabase,
)
from bpsync_dagster.sda_database.records import (
    FileRecord,
    RecordError,
    check_records,
    destination_problem,
    record_problems,
)

__all__ = [
    "DatabaseError",
    "DatabaseState",
    "FileRecords",
    "MissingGrantError",
    "SchemaVersionError",
    "FileRecord",
    "RecordError",
    "SdaDatabase",
    "check_records",
    "destination_problem",
    "record_problems",
]
