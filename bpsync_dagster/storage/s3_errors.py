"""Turn botocore exceptions into one-line storage errors that say whether to retry."""

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

from bpsync_dagster.storage.errors import StorageError, TransientStorageError

# BadDigest and XAmzContentSHA256Mismatch: a body damaged on its way, which sending it again may fix.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
    }
)


def s3_error(error: ClientError | BotoCoreError, subject: str) -> StorageError:
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{subject}: S3 answered {code or status}"
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return StorageError(f"{subject} does not exist (S3 {code})")
        if code in TRANSIENT_CODES or status >= 500:
            return TransientStorageError(message)
        return StorageError(message)
    if isinstance(error, (EndpointConnectionError, ConnectionError, ReadTimeoutError)):
        return TransientStorageError(f"{subject}: S3 endpoint unreachable ({type(error).__name__})")
    return TransientStorageError(f"{subject}: {type(error).__name__}")


def s3_cause(error: ClientError | BotoCoreError) -> BaseException | None:
    """`error`, as the cause to keep of the storage error made of it; None for botocore's HTTP client
    errors, whose `request` is the signed request (its Authorization header, a session token)."""
    return None if isinstance(error, HTTPClientError) else error
