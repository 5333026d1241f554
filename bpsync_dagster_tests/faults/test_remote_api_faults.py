"""The remote sync API misbehaves: transient faults (5xx, 429, a closed connection, a read timeout)
are retried with growing back-off, client errors fail the run at once with one clear line, and the
manifest is never POSTed before every file of the dataset is in sync storage and decrypts.

`jobs/test_sync_dataset_failures.py` already covers a 503 and a closed connection being retried and
refused credentials; these tests add the timing, the timeout, the retry budget and other 4xx.
Back-off jitter is pinned (see `support/pinned_backoff_cli.py`) so the gaps are predictable.
"""

import os
from collections.abc import Iterator

import pytest

from bpsync_dagster.jobs.failures import REMOTE_API_RETRY
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faults import (
    ManifestWitness,
    bpsync_pinned,
    failure_line,
    run_id_of,
    witnessed_remote,
)

READ_TIMEOUT_SECONDS = 1
OVERHEAD_SECONDS = 3.0


def retry_delay(retry_number: int, jitter: float) -> float:
    """The pinned delay before the `retry_number`-th retry (1-based) of `post_manifest`."""
    return (2**retry_number - 1) * REMOTE_API_RETRY.delay * jitter


def seed_dataset(node: Node, witness: ManifestWitness, name: str) -> str:
    dataset_id = node.dataset_id(name)
    files = node.add_dataset(dataset_id, [(f"{name}/{index}.c4gh", os.urandom(300_000 + index)) for index in range(3)])
    witness.expect(dataset_id, files)
    return dataset_id


@pytest.fixture
def witnessed_node(make_node) -> Iterator[tuple[Node, ManifestWitness]]:
    """A node syncing to S3 whose remote checks sync storage when a manifest arrives."""
    node: Node = make_node("posix", "s3")
    remote, witness = witnessed_remote(node)
    yield node, witness
    remote.stop()


def test_transient_faults_are_retried_with_growing_gaps_and_the_post_waits_for_every_file(
    witnessed_node: tuple[Node, ManifestWitness],
) -> None:
    node, witness = witnessed_node
    jitter = 0.15
    dataset_id = seed_dataset(node, witness, "transient")
    node.remote.fail_next(1, status=500)
    node.remote.fail_next(1, status=429)
    node.remote.fail_next_by_closing(1)
    node.remote.fail_next_by_hanging(1, seconds=120)

    result = bpsync_pinned(
        node, *node.sync_arguments(dataset_id), jitter=jitter, remote_read_timeout=READ_TIMEOUT_SECONDS
    )

    assert result.returncode == 0, result.stdout + result.stderr
    retries = [line for line in result.stdout.splitlines() if "post_manifest will retry" in line]
    assert len(retries) == 4
    assert "answered HTTP 500" in retries[0] and "answered HTTP 429" in retries[1]
    assert "cannot reach" in retries[2] and "timed out" in retries[3]
    times = node.remote.attempt_times
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == 4
    assert gaps == sorted(gaps), gaps
    attempt_seconds = [0.0, 0.0, 0.0, READ_TIMEOUT_SECONDS]
    for number, gap in enumerate(gaps, start=1):
        least = retry_delay(number, jitter) + attempt_seconds[number - 1]
        assert least <= gap <= least + OVERHEAD_SECONDS, (number, gaps)
    assert witness.posts[dataset_id] == 1 and witness.problems == []


def test_a_remote_that_stays_down_fails_the_run_in_one_line_and_reexecution_only_posts(
    witnessed_node: tuple[Node, ManifestWitness],
) -> None:
    node, witness = witnessed_node
    dataset_id = seed_dataset(node, witness, "down")
    node.remote.fail_next(REMOTE_API_RETRY.max_retries + 1, status=503)

    failed = bpsync_pinned(node, *node.sync_arguments(dataset_id), jitter=0.02)

    assert failed.returncode == 1
    line = failure_line(failed.stderr)
    assert f"dataset {dataset_id}" in line and "post_manifest" in line and "HTTP 503" in line
    assert "Traceback" not in failed.stderr
    assert node.remote.attempts == REMOTE_API_RETRY.max_retries + 1 and node.remote.received == []

    resumed = bpsync_pinned(node, "reexecute", run_id_of(failed.stdout), jitter=0.02)

    assert resumed.returncode == 0, resumed.stderr
    assert "copy_files" not in resumed.stdout and "0 files copied" in resumed.stdout
    assert witness.posts[dataset_id] == 1 and witness.problems == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "refused the credentials of sync.remote.user"),
        (422, "HTTP 422"),
        # Only 200 is success (sync-spec step 6): a 201 did not confirm the dataset either.
        (201, 'HTTP 201 {"error": "injected failure"}'),
    ],
)
def test_client_errors_fail_at_once_in_one_line(
    witnessed_node: tuple[Node, ManifestWitness], status: int, expected: str
) -> None:
    node, witness = witnessed_node
    dataset_id = seed_dataset(node, witness, f"refused-{status}")
    node.remote.fail_next(1, status=status)

    result = bpsync_pinned(node, *node.sync_arguments(dataset_id), jitter=0.02)

    assert result.returncode == 1
    line = failure_line(result.stderr)
    assert f"dataset {dataset_id}" in line and f"HTTP {status}" in line and expected in line
    assert "will retry" not in result.stdout and "Traceback" not in result.stderr
    assert node.remote.attempts == 1 and node.remote.received == []
