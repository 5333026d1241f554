"""The per-file table of a copy step's metadata: a rate only where it measures throughput."""

import dagster as dg

from bpsync_dagster.jobs.sync_dataset import NO_RATE, copy_metadata
from bpsync_dagster.storage import CopyOutcome

MIB = 1024**2


def _outcome(accession_id: str, bytes_written: int, seconds: float, skipped: bool = False) -> CopyOutcome:
    return CopyOutcome(
        accession_id=accession_id,
        destination=f"/sync/{accession_id}.c4gh",
        object_size=bytes_written,
        bytes_written=bytes_written,
        seconds=seconds,
        skipped=skipped,
        verified=True,
    )


def _rows(outcomes: list[CopyOutcome]) -> dict[str, dict[str, object]]:
    table = copy_metadata(outcomes)["files"]
    assert isinstance(table, dg.TableMetadataValue)
    return {str(row.data["accession_id"]): dict(row.data) for row in table.records}


def test_a_rate_is_shown_only_for_a_copy_of_at_least_a_mebibyte_and_ten_milliseconds() -> None:
    rows = _rows(
        [
            _outcome("skipped", 0, 0.002, skipped=True),
            _outcome("tiny", 2_000, 0.5),
            _outcome("instant", 64 * MIB, 0.005),
            _outcome("slow", 3 * MIB, 2.0),
            _outcome("fast", 300 * MIB, 2.5),
        ]
    )

    assert {name: row["MB/s"] for name, row in rows.items()} == {
        "skipped": NO_RATE,
        "tiny": NO_RATE,
        "instant": NO_RATE,
        "slow": "1.5",
        "fast": "120",
    }
    assert rows["skipped"]["action"] == "skip" and rows["tiny"]["action"] == "copy"
    assert rows["tiny"]["bytes"] == 2_000 and rows["tiny"]["seconds"] == 0.5


def test_every_value_has_its_column_type() -> None:
    table = copy_metadata([_outcome("skipped", 0, 0.0, skipped=True), _outcome("slow", 3 * MIB, 2.0)])["files"]
    assert isinstance(table, dg.TableMetadataValue) and table.schema is not None
    python_types = {"string": str, "int": int, "float": float}
    for row in table.records:
        for column in table.schema.columns:
            assert isinstance(row.data[column.name], python_types[column.type]), (column.name, row.data)
