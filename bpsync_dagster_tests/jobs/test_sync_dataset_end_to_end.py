"""`bpsync sync` against real Postgres, S3 (moto and Ceph's RADOS Gateway), POSIX directories and an
HTTP remote."""

import json
import os

import pytest
from dagster import DagsterRunStatus, RunsFilter

from bpsync_dagster_tests.support import crypt4gh_files
from bpsync_dagster_tests.support.environment import SECRETS, SUBMITTER
from bpsync_dagster_tests.support.s3_server import S3_SERVERS

MIB = 1024 * 1024
# Every S3 combination against each server; S3→S3 also over HTTPS (radosgw with a test CA).
STORAGES = [
    ("posix", "posix", "moto"),
    *[
        (archive, sync, server)
        for archive, sync in (("s3", "s3"), ("posix", "s3"), ("s3", "posix"))
        for server in S3_SERVERS
    ],
    ("s3", "s3", "radosgw-https"),
]


@pytest.mark.parametrize(("archive", "sync", "s3_server"), STORAGES, indirect=["s3_server"])
def test_sync_copies_reencrypted_files_and_posts_the_manifest(make_node, archive: str, sync: str) -> None:
    node = make_node(archive, sync)
    dataset_id = node.dataset_id("basic")
    files = node.add_dataset(
        dataset_id,
        [
            ("empty.c4gh", b""),
            ("small/notes.txt.c4gh", b"a small file\n" * 10),
            ("big/slide.tiff.c4gh", os.urandom(12 * MIB + 123)),
        ],
    )

    result = node.bpsync("sync", dataset_id, *[item.accession_id for item in files])

    assert result.returncode == 0, result.stderr
    assert f"dataset {dataset_id} synced: 3 files copied" in result.stdout
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
        synced_header = node.synced_object(item.path)[: len(item.header)]
        assert synced_header != item.header
        with pytest.raises(ValueError):
            crypt4gh_files.decrypt(synced_header, b"", node.node_keys.secret_key)
    assert node.remote.received == [
        {
            "dataset_id": dataset_id,
            "dataset_files": [
                {
                    "filepath": item.path,
                    "file_id": item.accession_id,
                    "sha256": crypt4gh_files.sha256_hex(item.plaintext),
                }
                for item in files
            ],
            "user": SUBMITTER,
        }
    ]
    if sync == "s3":
        multipart = node.s3.client().list_multipart_uploads(Bucket=f"{node.bucket_prefix}1")
        assert not multipart.get("Uploads")

    instance = node.instance()
    runs = instance.get_runs(RunsFilter(tags={"dataset_id": dataset_id}))
    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
        assert secret not in str(runs[0].run_config) + str(runs[0].tags)
        assert secret not in str(instance.all_logs(runs[0].run_id))


def test_json_logs_carry_the_dataset_and_accession_ids(make_node) -> None:
    node = make_node("posix", "posix")
    node.extra_env = {"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
    dataset_id = node.dataset_id("json-logs")
    (item,) = node.add_dataset(dataset_id, [("logged.c4gh", b"logged")])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    copied = [entry for entry in entries if entry.get("accession_id") == item.accession_id]
    assert copied and copied[0]["dataset_id"] == dataset_id and copied[0]["level"] == "debug"
    assert "in place at" in copied[0]["message"]
    progress = [entry for entry in entries if "files in place" in entry["message"]]
    assert [entry["level"] for entry in progress] == ["info"] and item.accession_id in progress[0]["message"]
    for secret in SECRETS:
        assert secret not in result.stderr
    events = node.instance().all_logs(copied[0]["run_id"])
    assert any(item.accession_id in event.user_message for event in events)
