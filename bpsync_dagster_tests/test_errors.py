"""Every error of the project is a `SyncError`, and whether an op retries it follows its `transient`
attribute: a transient or unknown error goes to the op's retry policy, any other fails the step for good."""

import importlib
import inspect
import pkgutil

import dagster as dg
import pytest

import bpsync_dagster
from bpsync_dagster.broker.client import BrokerError
from bpsync_dagster.c4gh import HeaderError
from bpsync_dagster.configuration import ConfigError
from bpsync_dagster.errors import SyncError, is_final
from bpsync_dagster.jobs.failures import failure_reason, final_failures
from bpsync_dagster.jobs.sync_dataset import CopyFailed
from bpsync_dagster.remote_api import ManifestError, RemoteApiError, TransientRemoteApiError
from bpsync_dagster.sda_database import DatabaseError, MissingGrantError, SchemaVersionError
from bpsync_dagster.storage import StorageError, TransientStorageError


def project_exception_classes() -> list[type[BaseException]]:
    """The exception classes every module of the project defines (a `__main__` runs when imported)."""
    classes: set[type[BaseException]] = set()
    for module_info in pkgutil.walk_packages(bpsync_dagster.__path__, f"{bpsync_dagster.__name__}."):
        if module_info.name.endswith(".__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                classes.add(value)
    return sorted(classes, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_every_exception_class_of_the_project_is_a_sync_error() -> None:
    classes = project_exception_classes()
    assert {cls.__name__ for cls in classes} >= {"ConfigError", "StorageError", "RemoteApiError", "CopyFailed"}
    assert [cls.__qualname__ for cls in classes if not issubclass(cls, SyncError)] == []


@pytest.mark.parametrize(
    ("error_class", "transient"),
    [
        (ConfigError, False),
        (ManifestError, False),
        (RemoteApiError, False),
        (TransientRemoteApiError, True),
        (StorageError, False),
        (TransientStorageError, True),
        (DatabaseError, True),
        (SchemaVersionError, False),
        (MissingGrantError, False),
        (BrokerError, True),
        (CopyFailed, True),
    ],
)
def test_each_error_says_whether_a_retry_may_help(error_class: type[SyncError], transient: bool) -> None:
    assert error_class("problem").transient is transient


def storage_error_set_transient() -> StorageError:
    error = StorageError("s3://bucket/key: S3 answered 503")
    error.transient = True
    return error


@pytest.mark.parametrize(
    "error",
    [
        TransientStorageError("s3://bucket/key: S3 answered SlowDown"),
        storage_error_set_transient(),
        TransientRemoteApiError("the remote API timed out"),
        OSError("an error the project does not know"),
    ],
    ids=["transient class", "transient instance", "transient remote", "unknown"],
)
def test_the_op_wrapper_lets_a_transient_or_unknown_error_through(error: Exception) -> None:
    assert not is_final(error)
    with pytest.raises(type(error)) as raised, final_failures():
        raise error
    assert raised.value is error


@pytest.mark.parametrize(
    "error",
    [
        StorageError("s3://bucket/key does not exist (S3 NoSuchKey)"),
        MissingGrantError("the SDA database role cannot read sda.files"),
        HeaderError("malformed crypt4gh header: Header too small"),
    ],
    ids=["final storage", "missing grant", "header"],
)
def test_the_op_wrapper_fails_a_final_error_for_good(error: SyncError) -> None:
    with pytest.raises(dg.Failure) as raised, final_failures():
        raise error
    assert raised.value.description == str(error)
    assert raised.value.allow_retries is False
    assert raised.value.__cause__ is error


def failing_job(error: Exception) -> dg.JobDefinition:
    @dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
    def fails() -> None:
        with final_failures():
            raise error

    @dg.job
    def job() -> None:
        fails()

    return job


def run_events(error: Exception) -> list[dg.DagsterEvent]:
    result = failing_job(error).execute_in_process(raise_on_error=False)
    assert not result.success
    return result.all_events


def test_a_transient_error_is_retried_and_named_without_the_cause_it_keeps() -> None:
    try:
        try:
            raise ConnectionResetError("connection reset by peer")
        except ConnectionResetError as cause:
            raise TransientStorageError("s3://bucket/key: S3 endpoint unreachable") from cause
    except TransientStorageError as error:
        events = run_events(error)

    assert [event.event_type for event in events].count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    failures = [event for event in events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure_reason(failures[0]) == "s3://bucket/key: S3 endpoint unreachable"
    chain, error_info = [], failures[0].step_failure_data.error
    while error_info is not None:
        chain.append(error_info.cls_name)
        error_info = error_info.cause
    assert chain[-2:] == ["TransientStorageError", "ConnectionResetError"]


def test_a_final_error_fails_the_step_without_a_retry() -> None:
    events = run_events(StorageError("s3://bucket/key does not exist (S3 NoSuchKey)"))

    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in [event.event_type for event in events]
    failures = [event for event in events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure_reason(failures[0]) == "s3://bucket/key does not exist (S3 NoSuchKey)"
