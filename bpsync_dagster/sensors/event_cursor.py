"""A sensor cursor that is the storage ID of the last event a sensor is done with, as `{"record_id": N}`
(the key of the run-status-sensor cursors Dagster stores)."""

import json


def event_cursor(storage_id: int) -> str:
    return json.dumps({"record_id": storage_id})


def cursor_storage_id(cursor: str | None) -> int | None:
    """The storage ID in a cursor; None for no cursor or an unreadable one."""
    try:
        data = json.loads(cursor) if cursor else None
    except json.JSONDecodeError:
        return None
    storage_id = data.get("record_id") if isinstance(data, dict) else None
    return storage_id if isinstance(storage_id, int) else None
