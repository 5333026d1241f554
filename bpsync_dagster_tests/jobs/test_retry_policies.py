"""The retry budget: a dataset whose remote keeps failing ends FAILED within 5 minutes."""

from dagster._core.definitions.policy import calculate_delay

from bpsync_dagster.jobs.failures import REMOTE_API_RETRY
from bpsync_dagster.resources import RemoteSyncApiResource

LONGEST_READ_TIMEOUT = 30  # the largest sync.remote.readTimeout the configuration accepts


def test_a_remote_that_keeps_failing_is_given_up_within_five_minutes() -> None:
    policy = REMOTE_API_RETRY
    longest_backoff = sum(
        calculate_delay(attempt, policy.backoff, None, policy.delay) for attempt in range(1, policy.max_retries + 1)
    )
    longest_attempt = RemoteSyncApiResource().connect_timeout_seconds + LONGEST_READ_TIMEOUT

    assert longest_backoff + (policy.max_retries + 1) * longest_attempt < 300
