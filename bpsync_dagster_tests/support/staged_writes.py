"""Writing a whole body through the service's staged-object interface, as the copy does."""

from bpsync_dagster.storage.placement import StagedObject

MiB = 1024 * 1024


def write_all(staged: StagedObject, data: bytes, piece: int = MiB) -> None:
    """Write `data` in pieces and commit; abort the object if anything fails, and re-raise."""
    try:
        for start in range(0, len(data), piece):
            staged.write(data[start : start + piece])
        staged.commit()
    except BaseException:
        staged.abort()
        raise
