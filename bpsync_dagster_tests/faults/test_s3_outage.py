"""S3 sync storage goes away in the middle of a multipart upload and comes back a few seconds later:
the run's retries (botocore's, then the op's) finish the file, the object decrypts to its plaintext,
no multipart upload is left behind, and the manifest is POSTed once, after the file is complete.

botocore's standard retries (5 attempts, at most 1 + 2 + 4 + 8 s of back-off) would ride out a short
outage unseen; this one lasts longer than that budget, so the op's retry (COPY_RETRY) must finish
the file, and the failed attempt's abort of its multipart upload meets the outage too. The outage
begins when the upload's third part arrives, so the upload is always caught in the middle."""

import os
from collections.abc import Iterator

import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faults import (
    ManifestWitness,
    assert_no_open_multipart_uploads,
    start_bpsync,
    witnessed_remote,
)
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server

MIB = 1024 * 1024
OUTAGE_SECONDS = 16.0
PARTS = 5
OUTAGE_AT_PART = 3


@pytest.fixture
def private_s3() -> Iterator[InterruptibleS3Server]:
    with InterruptibleS3Server() as server:
        yield server


@pytest.fixture
def witnessed_node(make_node, private_s3: InterruptibleS3Server) -> Iterator[tuple[Node, ManifestWitness]]:
    node: Node = make_node("posix", "s3")
    node.s3 = private_s3
    remote, witness = witnessed_remote(node)
    yield node, witness
    remote.stop()


def test_an_outage_during_a_multipart_upload_is_survived(
    witnessed_node: tuple[Node, ManifestWitness], private_s3: InterruptibleS3Server
) -> None:
    node, witness = witnessed_node
    dataset_id = node.dataset_id("s3-outage")
    files = node.add_dataset(dataset_id, [("large.c4gh", os.urandom(PARTS * 5 * MIB)), ("small.c4gh", b"small")])
    witness.expect(dataset_id, files)

    server_back = private_s3.outage_at_upload_part(OUTAGE_AT_PART, OUTAGE_SECONDS)
    process = start_bpsync(node, *node.sync_arguments(dataset_id), jitter=0.1)
    output, _ = process.communicate(timeout=300)

    assert server_back.is_set(), "the upload never reached the part where the outage begins"
    assert process.returncode == 0, output
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert "copy_files[0] will retry" in output and "S3 endpoint unreachable" in output
    assert witness.posts[dataset_id] == 1 and witness.problems == []
    assert_no_open_multipart_uploads(node)
