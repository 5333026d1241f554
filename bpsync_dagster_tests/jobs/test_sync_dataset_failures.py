"""Bad data, bad configuration and failing services: clear errors, no partial objects, no early POST."""

import os

import pytest

from bpsync_dagster_tests.support import crypt4gh_files
from bpsync_dagster_tests.support.environment import (
    SECRETS,
    Node,
    create_sda_database,
    drop_database,
)
from bpsync_dagster_tests.support.s3_server import S3_SERVERS

MIB = 1024 * 1024
OLD_SDA_DB = f"bpsync_test_sda_v22_{os.getpid()}"


def _failure_line(stderr: str) -> str:
    """The CLI's one-line reason for a failed sync."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("bpsync: ") and "sync failed" in line]
    return line


def test_without_accession_ids_the_dataset_files_are_synced(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("whole")
    files = node.add_dataset(dataset_id, [("one.c4gh", b"1" * 10), ("two.c4gh", b"2" * 20)])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    assert [entry["file_id"] for entry in node.remote.received[0]["dataset_files"]] == [f.accession_id for f in files]


@pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
def test_s3_buckets_roll_over_and_a_full_storage_fails_clearly(make_node) -> None:
    node: Node = make_node("posix", "s3")
    node.sync_s3_options = {"max_objects": 2, "max_buckets": 3}
    first = node.dataset_id("rollover-a")
    node.add_dataset(first, [(f"a{index}.c4gh", os.urandom(100)) for index in range(5)])

    assert node.sync_mapped(first, "--parallel-files", "2").returncode == 0
    client = node.s3.client()
    counts = [len(client.list_objects_v2(Bucket=bucket).get("Contents", [])) for bucket in node.sync_buckets()]
    assert node.sync_buckets() == [f"{node.bucket_prefix}{number}" for number in (1, 2, 3)]
    assert counts == [2, 2, 1]

    second = node.dataset_id("rollover-b")
    node.add_dataset(second, [("b0.c4gh", b"b0"), ("b1.c4gh", b"b1")])
    result = node.sync_mapped(second, "--parallel-files", "1")

    assert result.returncode == 1
    assert "sync storage is full" in result.stderr
    assert node.remote.received[-1]["dataset_id"] == first


@pytest.mark.parametrize(
    ("sync", "s3_server"), [("posix", "moto"), *[("s3", server) for server in S3_SERVERS]], indirect=["s3_server"]
)
def test_a_checksum_mismatch_leaves_no_partial_object_and_sends_nothing(make_node, sync: str) -> None:
    node: Node = make_node("posix", sync)
    dataset_id = node.dataset_id("corrupt")
    good = node.add_file(f"{dataset_id}-good", f"{node.prefix}/good.c4gh", b"good")
    bad = node.add_file(f"{dataset_id}-bad", f"{node.prefix}/bad.c4gh", os.urandom(11 * MIB), archived_sha256="0" * 64)

    result = node.bpsync("sync", dataset_id, good.accession_id, bad.accession_id)

    assert result.returncode == 1
    message = _failure_line(result.stderr)
    assert bad.accession_id in message and "bad.c4gh" in message and "ARCHIVED" in message
    assert "Traceback" not in result.stderr
    assert node.visible_sync_names() == [good.path]
    if sync == "s3":
        assert not node.s3.client().list_multipart_uploads(Bucket=f"{node.bucket_prefix}1").get("Uploads")
    assert node.remote.attempts == 0


def test_reexecution_from_failure_skips_finished_files(make_node) -> None:
    node: Node = make_node("posix", "s3")

    failed = node.sync_with_a_missing_body("resume")

    assert failed.result.returncode == 1
    message = _failure_line(failed.result.stderr)
    assert failed.files[-1].accession_id in message and "does not exist" in message
    assert node.remote.attempts == 0
    failed.restore_body()

    resumed = node.bpsync("reexecute", failed.run_id)

    assert resumed.returncode == 0, resumed.stderr
    assert "1 files copied, 2 already in place" in resumed.stdout
    for item in failed.files:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert len(node.remote.received) == 1


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/absolute.c4gh", "submission_file_path is absolute"),
        ("escape/../../outside.c4gh", "submission_file_path contains '..'"),
    ],
)
def test_unsafe_destination_paths_fail_before_anything_is_copied(make_node, path: str, problem: str) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("unsafe")
    item = node.add_file(f"{dataset_id}-F1", path, b"data")

    result = node.bpsync("sync", dataset_id, item.accession_id)

    assert result.returncode == 1
    message = _failure_line(result.stderr)
    assert f"dataset {dataset_id}" in message and item.accession_id in message and problem in message
    assert node.visible_sync_names() == []
    assert node.remote.attempts == 0


def test_unknown_accession_ids_are_named(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("unknown")
    item = node.add_file(f"{dataset_id}-F1", f"{node.prefix}/known.c4gh", b"data")

    result = node.bpsync("sync", dataset_id, item.accession_id, f"{dataset_id}-MISSING")

    assert result.returncode == 1
    assert f"{dataset_id}-MISSING: not in sda.files" in result.stderr


def test_a_header_the_node_key_cannot_open_fails_clearly(make_node, key_pairs) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("foreign-header")
    header, body = crypt4gh_files.encrypt(b"secret data", key_pairs[1].public_key)
    item = node.add_file(f"{dataset_id}-F1", f"{node.prefix}/foreign.c4gh", b"secret data", header=header, body=body)

    result = node.bpsync("sync", dataset_id, item.accession_id)

    assert result.returncode == 1
    assert item.accession_id in result.stderr and "private key" in result.stderr


def test_an_archived_body_of_the_wrong_size_fails_clearly(make_node) -> None:
    node: Node = make_node("s3", "posix")
    dataset_id = node.dataset_id("size")
    item = node.add_file(f"{dataset_id}-F1", f"{node.prefix}/sized.c4gh", b"0123456789", archive_file_size=5)

    result = node.bpsync("sync", dataset_id, item.accession_id)

    assert result.returncode == 1
    assert "archive_file_size says 5" in result.stderr and item.accession_id in result.stderr


def test_transient_remote_errors_are_retried(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("flaky-remote")
    node.add_dataset(dataset_id, [("flaky.c4gh", b"data")])
    node.remote.fail_next(1, status=503)
    node.remote.fail_next_by_closing(1)

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    assert "post_manifest will retry" in result.stdout
    assert node.remote.attempts == 3
    assert len(node.remote.received) == 1


def test_refused_credentials_fail_at_once(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"SYNC_REMOTE_PASSWORD": "not-the-password"}
    dataset_id = node.dataset_id("refused")
    node.add_dataset(dataset_id, [("refused.c4gh", b"data")])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 1
    assert "HTTP 401" in result.stderr and "sync.remote.user" in result.stderr
    assert node.remote.attempts == 1
    assert "not-the-password" not in result.stdout + result.stderr


def test_a_redirect_fails_the_run_at_once_naming_where_it_leads(make_node) -> None:
    """Followed, the POST would become a GET of the login page, answered 200: counted as delivered."""
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("redirected")
    node.add_dataset(dataset_id, [("redirected.c4gh", b"data")])
    node.remote.redirect_next(5)

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 1, result.stdout + result.stderr
    line = _failure_line(result.stderr)
    assert f"answered HTTP 302, a redirect to {node.remote.url}/login: not followed" in line
    assert "will retry" not in result.stdout
    assert node.remote.attempts == 1
    assert node.remote.received == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"C4GH_PASSPHRASE": "wrong passphrase"}, "c4gh.passphrase: wrong passphrase"),
        (
            {"SYNC_REMOTE_HOST": "", "CONFIG_FILE": "/nonexistent/config.yaml"},
            "config: the file /nonexistent/config.yaml named by CONFIG_FILE does not exist",
        ),
        (
            {"C4GH_SYNCPUBKEYPATH": "/nonexistent.pub"},
            "c4gh.syncPubKeyPath: public key /nonexistent.pub does not exist",
        ),
    ],
)
def test_bad_configuration_is_one_line_before_any_run(make_node, env: dict[str, str], expected: str) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = env
    dataset_id = node.dataset_id("badconfig")
    node.add_dataset(dataset_id, [("x.c4gh", b"x")])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"bpsync: {expected}")
    assert result.stdout == ""
    for secret in SECRETS:
        assert secret not in result.stderr


def test_a_wrong_executor_setting_is_one_line_before_any_run(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"BPSYNC_EXECUTOR": "dask"}
    dataset_id = node.dataset_id("bad-executor")
    node.add_dataset(dataset_id, [("x.c4gh", b"x")])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        "bpsync: config: BPSYNC_EXECUTOR is 'dask': must be one of in_process, celery, k8s"
    )
    assert "Traceback" not in result.stderr


def test_an_sda_schema_older_than_23_is_refused_at_once(make_node) -> None:
    node: Node = make_node("posix", "posix")
    create_sda_database(OLD_SDA_DB, schema_version=22)
    node.extra_env = {"DB_DATABASE": OLD_SDA_DB}
    try:
        result = node.bpsync("sync", node.dataset_id("old-schema"), node.dataset_id("old-schema-F000"))
    finally:
        drop_database(OLD_SDA_DB)

    assert result.returncode == 1
    assert "has schema version 22; at least 23 is required" in _failure_line(result.stderr)
    assert "will retry" not in result.stdout


def test_a_manifest_that_cannot_be_built_stops_the_sync_before_copying(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("two-users")
    first = node.add_file(f"{dataset_id}-F1", f"{node.prefix}/one.c4gh", b"1")
    second = node.add_file(
        f"{dataset_id}-F2", f"{node.prefix}/two.c4gh", b"2", submission_user="someone.else@example.org"
    )

    result = node.bpsync("sync", dataset_id, first.accession_id, second.accession_id)

    assert result.returncode == 1
    assert "several users" in _failure_line(result.stderr)
    assert node.visible_sync_names() == []
    assert node.remote.attempts == 0


def test_every_call_syncs_again(make_node) -> None:
    node: Node = make_node("posix", "s3")
    dataset_id = node.dataset_id("again")
    (item,) = node.add_dataset(dataset_id, [("again.c4gh", b"again" * 100)])

    first = node.sync_mapped(dataset_id)
    header_after_first = node.synced_object(item.path)[:124]
    second = node.sync_mapped(dataset_id)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "1 files copied, 0 already in place" in second.stdout
    assert node.synced_object(item.path)[:124] != header_after_first
    assert node.decrypt_synced(item.path) == item.plaintext
    assert len(node.remote.received) == 2
