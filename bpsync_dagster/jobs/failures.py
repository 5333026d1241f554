"""Split errors into final failures (no retry) and transient ones (the op's retry policy applies)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from bpsync_dagster.c4gh import HeaderError, KeyLoadError
from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.dagster_internals import SerializableErrorInfo
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.remote_api import (
    ManifestError,
    RemoteApiError,
    TransientRemoteApiError,
)
from bpsync_dagster.sda_database import MissingGrantError, RecordError, SchemaVersionError
from bpsync_dagster.storage import StorageError, TransientStorageError

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (TransientStorageError, TransientRemoteApiError)
FINAL_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    KeyLoadError,
    HeaderError,
    RecordError,
    SchemaVersionError,
    MissingGrantError,
    ManifestError,
    RemoteApiError,
    StorageError,
)

DATABASE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
COPY_RETRY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)
# 5 attempts of at most 10 s connect + 30 s read, plus at most 78 s of back-off: under 5 minutes.
REMOTE_API_RETRY = dg.RetryPolicy(max_retries=4, delay=3, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL)


def is_final(error: BaseException) -> bool:
    return isinstance(error, FINAL_ERRORS) and not isinstance(error, TRANSIENT_ERRORS)


@contextmanager
def final_failures() -> Iterator[None]:
    """Turn final errors into a `dg.Failure` that is not retried, its text escaped (it may hold IDs and
    paths from the SDA database or answers of a remote); let the rest through to the retry policy."""
    try:
        yield
    except Exception as error:
        if is_final(error):
            raise dg.Failure(description=escaped(str(error)), allow_retries=False) from None
        raise


def innermost_message(error: SerializableErrorInfo) -> str:
    """The root cause's message, without the exception's class name, escaped."""
    while error.cause is not None:
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
