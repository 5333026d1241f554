"""`bpsync backfill`: a Dagster partition backfill of `synced_dataset` for every local dataset that was
never synced, or not since a date; the daemon submits its runs to the run queue, whose limits apply."""

import argparse
import datetime

from dagster import AssetRecordsFilter, DagsterInstance, QueuedRunCoordinator

from bpsync_dagster.configuration import Settings
from bpsync_dagster.dagster_internals import submit_partition_backfill
from bpsync_dagster.definitions import defs
from bpsync_dagster.errors import SyncError
from bpsync_dagster.inventory import DATASET_PARTITIONS, SYNCED_DATASET
from bpsync_dagster.runs.launch import LAUNCHED_BY_TAG, datasets_with_unfinished_runs
from bpsync_dagster.sda_database import SdaDatabase

PAGE_SIZE = 1000
LAUNCHED_BY = "bpsync backfill"


class NoRunQueue(SyncError):
    """A backfill's runs are held to the run queue's limits only with the QueuedRunCoordinator."""


def parse_since(text: str) -> datetime.datetime:
    """A date or ISO timestamp; without a time zone it is UTC."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO timestamp") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def backfill(instance: DagsterInstance, settings: Settings, since: datetime.datetime | None, dry_run: bool) -> int:
    local = SdaDatabase(settings.database).local_datasets(settings.center_prefix)
    synced = synced_since(instance, since)
    wanted = [dataset_id for dataset_id in local if dataset_id not in synced]
    busy = datasets_with_unfinished_runs(instance)
    when = f"since {since.isoformat()}" if since else "ever"
    print(f"bpsync: {len(local)} local datasets, {len(wanted)} not synced {when}", flush=True)
    selected = []
    for dataset_id in wanted:
        if dataset_id in busy:
            print(f"  {dataset_id}: a sync is already queued or running")
        else:
            print(f"  {dataset_id}: {'would be synced' if dry_run else 'to be synced'}")
            selected.append(dataset_id)
    if dry_run:
        return 0
    if not selected:
        print("bpsync: nothing to backfill")
        return 0
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        raise NoRunQueue("the Dagster instance has no run queue: dagster.yaml must use the QueuedRunCoordinator")
    instance.add_dynamic_partitions(DATASET_PARTITIONS.name, selected)
    backfill_id = submit_partition_backfill(
        instance, defs(), SYNCED_DATASET, selected, {LAUNCHED_BY_TAG: LAUNCHED_BY}, title=LAUNCHED_BY
    )
    print(
        f"bpsync: backfill {backfill_id} of {len(selected)} datasets submitted; the daemon queues its runs "
        "and launches them within the run queue's limits"
    )
    return 0


def synced_since(instance: DagsterInstance, since: datetime.datetime | None) -> set[str]:
    """Datasets with a successful sync recorded (after `since`, if given)."""
    if since is None:
        return set(instance.get_materialized_partitions(SYNCED_DATASET))
    records_filter = AssetRecordsFilter(asset_key=SYNCED_DATASET, after_timestamp=since.timestamp())
    datasets: set[str] = set()
    cursor = None
    while True:
        result = instance.fetch_materializations(records_filter, limit=PAGE_SIZE, cursor=cursor)
        datasets.update(record.partition_key for record in result.records if record.partition_key)
        if not result.has_more:
            return datasets
        cursor = result.cursor
