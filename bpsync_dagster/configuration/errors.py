"""The error every configuration problem is reported as."""

from collections.abc import Sequence

from bpsync_dagster.errors import SyncError


class ConfigError(SyncError):
    """Missing or malformed configuration keys. One problem is one line naming the key; several are a
    summary line saying where the configuration was read, then one indented line each."""

    def __init__(self, problem: str, *more: str, where: str = "the configuration") -> None:
        self.problems: tuple[str, ...] = (problem, *more)
        if more:
            lines = [f"config: {len(self.problems)} problems in {where}:", *(f"  {line}" for line in self.problems)]
            super().__init__("\n".join(lines))
        else:
            super().__init__(f"config: {problem}")

    @classmethod
    def of(cls, problems: Sequence[str], where: str) -> "ConfigError":
        """One error for all of `problems` (at least one), found in the configuration `where` describes."""
        return cls(*problems, where=where)
