"""S3 sync storage goes away in the middle of a multipart upload and comes back a few seconds later:
the run's retries (botocore's, then the op's) finish the file, the object decrypts to its plaintext,
no multipart upload is left behind, and the manifest is POSTed once, after the file is complete.

botocore retries a refused connection only for well under a second (4 retries, 50 ms scale), so an
outage of seconds is always the op's retry (COPY_RETRY) to handle, and the failed attempt's abort
of its multipart upload meets the outage too."""

import os
import time
from collections.abc import Iterator

import pytest

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.faults import (
    ManifestWitness,
    assert_no_open_multipart_uploads,
    open_multipart_uploads,
    start_bpsync,
    wait_for,
    witnessed_remote,
)
from bpsync_dagster_tests.support.interruptible_s3_server import InterruptibleS3Server

MIB = 1024 * 1024
OUTAGE_SECONDS = 3.0
PARTS = 5


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
    client = private_s3.client()

    process = start_bpsync(node, "sync", dataset_id, jitter=0.1)
    wait_for(lambda: node.sync_buckets() and open_multipart_uploads(node), timeout=120, interval=0.01)
    bucket = node.sync_buckets()[0]
    upload = client.list_multipart_uploads(Bucket=bucket)["Uploads"][0]
    parts_before = len(
        client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]).get("Parts", [])
    )
    private_s3.stop()
    time.sleep(OUTAGE_SECONDS)
    private_s3.start()
    output, _ = process.communicate(timeout=300)

    assert process.returncode == 0, output
    assert parts_before < PARTS, "the upload finished before the outage began"
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert "copy_files will retry" in output and "S3 endpoint unreachable" in output
    assert witness.posts[dataset_id] == 1 and witness.problems == []
    assert_no_open_multipart_uploads(node)
