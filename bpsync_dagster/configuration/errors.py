"""The error every configuration problem is reported as."""

from bpsync_dagster.errors import SyncError


class ConfigError(SyncError):
    """A missing or malformed configuration key; its message is one line naming the key."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"config: {problem}")
