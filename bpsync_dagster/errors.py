"""The base of every error this project raises, and what decides whether a failed op is retried."""


class SyncError(Exception):
    """An error of this project. `transient` says whether trying again may help: the ops' retry policy
    applies to transient errors, the others fail the step for good. A class that can be both sets it
    per instance."""

    transient: bool = False


def is_final(error: BaseException) -> bool:
    """Whether `error` is one of ours that trying again cannot fix; an unknown error may be transient."""
    return isinstance(error, SyncError) and not error.transient


def sync_error_names() -> set[str]:
    """The class names of `SyncError` and its subclasses, of the modules imported so far."""
    names: set[str] = set()
    pending: list[type[SyncError]] = [SyncError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names
