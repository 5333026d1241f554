"""`bpsync backfill`: submit a sync of every local dataset that was never synced, or not since a date."""

import argparse
import datetime

from dagster import AssetRecordsFilter, DagsterInstance

from bpsync_dagster.configuration import Settings
from bpsync_dagster.inventory import SYNCED_DATASET
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.sync_runs import datasets_with_unfinished_runs, enqueue_sync_run

PAGE_SIZE = 1000


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
    submitted = 0
    for dataset_id in wanted:
        if dataset_id in busy:
            print(f"  {dataset_id}: a sync is already queued or running")
        elif dry_run:
            print(f"  {dataset_id}: would be synced")
        else:
            run = enqueue_sync_run(instance, dataset_id, launched_by="bpsync backfill")
            print(f"  {dataset_id}: run {run.run_id} queued", flush=True)
            submitted += 1
    if not dry_run:
        print(f"bpsync: {submitted} sync runs submitted to the run queue; the daemon launches them within its limits")
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
