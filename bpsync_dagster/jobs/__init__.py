"""Dagster jobs of the service."""

from bpsync_dagster.jobs.sync_dataset import DATASET_TAG, sync_dataset, synced_dataset

__all__ = ["DATASET_TAG", "sync_dataset", "synced_dataset"]
