"""The asset catalog's inventory: `synced_dataset` (one dynamic partition per dataset ID), materialized
by `sync_dataset` runs, and its check that sync storage matches the SDA database."""

import dagster as dg

SYNCED_DATASET = dg.AssetKey("synced_dataset")
DATASET_PARTITIONS = dg.DynamicPartitionsDefinition(name="dataset_id")
MATCHES_SDA_CHECK = "matches_sda_database"
