"""`bpsync sync --dry-run`: each file of the sync and what would happen to it, printed; nothing written,
posted or recorded."""

import sys

from bpsync_dagster.c4gh import load_node_keys
from bpsync_dagster.configuration import Settings
from bpsync_dagster.configuration.schemas import file_sync_schema_file, load_schema
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.jobs.sync_plan import REFUSE, REPLACE, PlannedFile, plan_sync
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.storage import ArchiveStorage, StorageError, SyncStorage


def dry_run(settings: Settings, dataset_id: str, accession_ids: list[str]) -> int:
    """Print the plan; exit status 0 when the sync would succeed, 1 when it would fail."""
    keys = load_node_keys(settings.crypt4gh)
    try:
        plan = plan_sync(
            dataset_id,
            accession_ids,
            SdaDatabase(settings.database),
            keys,
            ArchiveStorage(settings.archive),
            SyncStorage(settings.sync, settings.copy.buffer_limit),
            load_schema(file_sync_schema_file(settings.schema)),
        )
    except StorageError as error:
        print(f"bpsync: dataset {escaped(dataset_id)}: dry run: {escaped(str(error))}", file=sys.stderr)
        return 1
    print(f"bpsync: dataset {escaped(dataset_id)}: dry run: nothing is written, posted or recorded", flush=True)
    width = max((len(escaped(item.accession_id)) for item in plan.files), default=0)
    for item in plan.files:
        print(f"  {_line(item, width)}")
    copied = [item for item in plan.files if item.action != REFUSE]
    replaced = sum(item.action == REPLACE for item in copied)
    if plan.refusal is not None:
        print(f"bpsync: dataset {escaped(dataset_id)}: the sync would fail: {escaped(plan.refusal)}")
        return 1
    print(
        f"bpsync: dataset {escaped(dataset_id)}: would copy {len(copied)} files, "
        f"{sum(item.size or 0 for item in copied)} bytes ({replaced} replacing an object already there), "
        "and post the manifest"
    )
    return 0


def _line(item: PlannedFile, width: int) -> str:
    size = "?" if item.size is None else str(item.size)
    where = f" {escaped(item.destination)}" if item.destination else ""
    note = f" ({escaped(item.note)})" if item.note else ""
    return f"{escaped(item.accession_id):<{width}}  {item.action:<7} {size:>12} bytes{where}{note}"
