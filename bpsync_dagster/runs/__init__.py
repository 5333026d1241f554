"""Sync runs outside a sensor: creating them (`bpsync sync`, the backfill), re-executing a failed one
from failure, and telling whether the process that executes a run is still alive."""
