"""Whether a message read again from a stream that was deleted and declared again was synced already.

A stream's run keys carry its generation, so a message read again from the new stream has a new run
key. It is the same message when a run holds the same dataset, the same accession IDs and the same
correlation id (or none, both): if such a run from an earlier generation succeeded or has not ended,
the dataset is (being) synced and needs no second run. One whose runs all failed or were canceled is
run again.
"""

import dagster as dg

from bpsync_dagster.broker.messages import SyncDataset
from bpsync_dagster.dagster_internals import RUN_KEY_TAG
from bpsync_dagster.jobs import DATASET_TAG
from bpsync_dagster.jobs.sync_dataset import requested_accession_ids
from bpsync_dagster.sensors.mapping_poller import CORRELATION_TAG

SETTLED_OR_UNDER_WAY = [
    status
    for status in dg.DagsterRunStatus
    if status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING)
]


def synced_earlier(
    instance: dg.DagsterInstance,
    queue: str,
    dataset: SyncDataset,
    correlation_id: str | None,
    generation: int,
) -> bool:
    """A run of the same message that succeeded or has not ended, and is not of `generation` of `queue`.

    Runs re-executed from the UI or by `bpsync reexecute` count too: they carry the dataset and
    correlation id tags and the run config of the run they repeat.
    """
    tags = {DATASET_TAG: dataset.dataset_id}
    if correlation_id:
        tags[CORRELATION_TAG] = correlation_id
    runs = instance.get_runs(dg.RunsFilter(tags=tags, statuses=SETTLED_OR_UNDER_WAY), limit=100)
    this_generation = f"{queue}:{generation}:"
    return any(
        not run.tags.get(RUN_KEY_TAG, "").startswith(this_generation)
        and run.tags.get(CORRELATION_TAG) == (correlation_id or None)
        and requested_accession_ids(run.run_config) == list(dataset.accession_ids)
        for run in runs
    )
