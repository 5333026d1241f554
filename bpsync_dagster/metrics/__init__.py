"""`bpsync metrics`: a Prometheus endpoint whose values are read, at each scrape, from Dagster's
instance and the broker."""

from bpsync_dagster.metrics.collector import SyncMetricsCollector

__all__ = ["SyncMetricsCollector"]
