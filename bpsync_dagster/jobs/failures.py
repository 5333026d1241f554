"""Split errors into final failures (no retry) and transient ones (the op's retry policy applies), by
`SyncError.transient`."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from bpsync_dagster.dagster_internals import SerializableErrorInfo
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.errors import is_final, sync_error_names

DATABASE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
COPY_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
# 5 attempts of at most 10 s connect + 30 s read, plus at most 78 s of back-off: under 5 minutes.
REMOTE_API_RETRY = dg.RetryPolicy(max_retries=4, delay=3, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


@contextmanager
def final_failures() -> Iterator[None]:
    """Turn errors that are not transient (`SyncError.transient`) into a `dg.Failure` that is not retried,
    its text escaped (it may hold IDs and paths from the SDA database or answers of a remote); let
    transient and unknown errors through to the retry policy."""
    try:
        yield
    except Exception as error:
        if is_final(error):
            raise dg.Failure(description=escaped(str(error)), allow_retries=False) from error
        raise


def innermost_message(error: SerializableErrorInfo) -> str:
    """The message of the first error of ours (a `SyncError`) in the chain below Dagster's wrappers,
    not of the library error it keeps as its cause; else the root cause's. Without the class name,
    escaped."""
    ours = sync_error_names()
    while error.cause is not None and error.cls_name not in ours:
        error = error.cause
    first_line = error.message.strip().split("\n")[0]
    class_name, separator, message = first_line.partition(": ")
    return escaped(message if separator and " " not in class_name else first_line)


def failure_reason(event: dg.DagsterEvent) -> str:
    """Why a step failed, in the words of the error that failed it, escaped."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return escaped(data.user_failure_data.description)
    return innermost_message(data.error) if data.error else "unknown error"
