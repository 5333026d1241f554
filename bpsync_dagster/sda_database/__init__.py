"""The SDA database: file records, checksums and dataset membership."""

from bpsync_dagster.sda_database.client import (
    DatabaseError,
    SchemaVersionError,
    SdaDatabase,
)
from bpsync_dagster.sda_database.records import (
    FileRecord,
    RecordError,
    check_records,
    destination_problem,
)

__all__ = [
    "DatabaseError",
    "SchemaVersionError",
    "FileRecord",
    "RecordError",
    "SdaDatabase",
    "check_records",
    "destination_problem",
]
