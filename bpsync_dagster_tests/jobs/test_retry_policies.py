"""The remote's retry policy, run against the stand-in remote: a remote that fails as many times as
the policy retries still gets the dataset, once; one that fails once more fails the run
(`faults/test_remote_api_faults.py` covers that, and the growing back-off). Back-off jitter is
pinned small (`support/pinned_backoff_cli.py`); the policy's attempts are its own."""

import os

import pytest

from bpsync_dagster.jobs.failures import REMOTE_API_RETRY
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faults import bpsync_pinned, failure_line

JITTER = 0.02


@pytest.mark.parametrize("failures", [REMOTE_API_RETRY.max_retries, REMOTE_API_RETRY.max_retries + 1])
def test_the_remote_is_tried_once_plus_the_policys_retries(make_node, failures: int) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id(f"retried-{failures}")
    node.add_dataset(dataset_id, [("retried.c4gh", os.urandom(1000))])
    node.remote.fail_next(failures, status=503)

    result = bpsync_pinned(node, *node.sync_arguments(dataset_id), jitter=JITTER)

    retries = [line for line in result.stdout.splitlines() if "post_manifest will retry" in line]
    assert len(retries) == REMOTE_API_RETRY.max_retries
    assert node.remote.attempts == REMOTE_API_RETRY.max_retries + 1
    if failures <= REMOTE_API_RETRY.max_retries:
        assert result.returncode == 0, result.stdout + result.stderr
        assert [manifest["dataset_id"] for manifest in node.remote.received] == [dataset_id]
    else:
        assert result.returncode == 1
        assert "HTTP 503" in failure_line(result.stderr) and node.remote.received == []
