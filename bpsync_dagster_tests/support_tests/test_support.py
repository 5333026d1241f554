"""Tests of the test-support helpers against real PostgreSQL, moto S3 and HTTP servers."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import requests
from crypt4gh.keys import get_private_key, get_public_key

from bpsync_dagster_tests.support import key_tools
from bpsync_dagster_tests.support.crypt4gh_files import (
    KeyPair,
    decrypt,
    encrypt,
    encrypt_with_edit_list,
    make_key_pair,
    sha256_hex,
)
from bpsync_dagster_tests.support.processes import read_line
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi
from bpsync_dagster_tests.support.s3_server import S3Server
from bpsync_dagster_tests.support.sda_database import (
    SdaFile,
    create_sda_database,
    drop_sda_database,
    insert_file,
    map_dataset,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FILE_SYNC_SCHEMA = REPO_ROOT / "schemas" / "bigpicture" / "file-sync.json"
PLAINTEXT = os.urandom(150_000)
VALID_BODY = {
    "dataset_id": "SYNC-001-12345",
    "dataset_files": [
        {"filepath": "inbox/user/file1.c4gh", "file_id": "SYNC-123-00003", "sha256": sha256_hex(b"one")},
    ],
    "user": "user.name@example.com",
}


@pytest.fixture(scope="module")
def node_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key_pair(tmp_path_factory.mktemp("keys"), "node", "node-passphrase")


@pytest.fixture(scope="module")
def receiver_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return make_key_pair(tmp_path_factory.mktemp("keys"), "receiver", "receiver-passphrase")


@pytest.fixture
def remote_api() -> Iterator[StandInRemoteApi]:
    with StandInRemoteApi("sync-user", "sync-pass", FILE_SYNC_SCHEMA) as api:
        yield api


def test_key_pairs_are_made_by_crypt4gh_keygen_and_open_with_the_crypt4gh_command(node_key: KeyPair) -> None:
    assert node_key.private_key_path.name == "node.sec.pem"
    assert node_key.private_key_path.read_text().startswith("-----BEGIN CRYPT4GH PRIVATE KEY-----\n")
    assert node_key.private_key_path.stat().st_mode & 0o777 == 0o400
    assert node_key.public_key_path.read_text().startswith("-----BEGIN CRYPT4GH PUBLIC KEY-----\n")
    assert len(node_key.secret_key) == len(node_key.public_key) == 32
    assert get_private_key(str(node_key.private_key_path), lambda: "node-passphrase") == node_key.secret_key
    assert get_public_key(str(node_key.public_key_path)) == node_key.public_key
    header, body = encrypt(PLAINTEXT, node_key.public_key)
    assert key_tools.crypt4gh_decrypt(header + body, node_key.private_key_path, "node-passphrase") == PLAINTEXT


def test_crypt4gh_exits_the_process_on_a_wrong_passphrase(node_key: KeyPair) -> None:
    with pytest.raises(SystemExit):
        get_private_key(str(node_key.private_key_path), lambda: "wrong")


def test_encrypt_decrypt_round_trip(node_key: KeyPair, receiver_key: KeyPair) -> None:
    header, body = encrypt(PLAINTEXT, node_key.public_key)
    assert len(header) == 124
    assert len(body) == len(PLAINTEXT) + 3 * 28
    assert decrypt(header, body, node_key.secret_key) == PLAINTEXT
    assert encrypt(PLAINTEXT, node_key.public_key)[0] != header
    with pytest.raises(ValueError):
        decrypt(header, body, receiver_key.secret_key)


@pytest.mark.parametrize(
    ("edit_list", "expected"),
    [
        ([10, 20, 5, 30], PLAINTEXT[10:30] + PLAINTEXT[35:65]),
        ([100, 70_000, 10], PLAINTEXT[100:70_100] + PLAINTEXT[70_110:]),
    ],
)
def test_edit_list_is_honoured_for_every_recipient(
    node_key: KeyPair, receiver_key: KeyPair, edit_list: list[int], expected: bytes
) -> None:
    header, body = encrypt_with_edit_list(PLAINTEXT, node_key.public_key, edit_list)
    assert int.from_bytes(header[12:16], "little") == 2
    assert decrypt(header, body, node_key.secret_key) == expected

    header, body = encrypt_with_edit_list(
        PLAINTEXT, node_key.public_key, edit_list, extra_recipient_public_key=receiver_key.public_key
    )
    assert int.from_bytes(header[12:16], "little") == 4
    assert decrypt(header, body, node_key.secret_key) == expected
    assert decrypt(header, body, receiver_key.secret_key) == expected
    with pytest.raises(ValueError):
        decrypt(header, body, os.urandom(32))


def test_sda_database_seeded_like_ingest_and_mapper(node_key: KeyPair) -> None:
    name = f"bpsync_support_{uuid.uuid4().hex[:12]}"
    create_sda_database(name, schema_version=20)
    dsn = create_sda_database(name)
    try:
        header, body = encrypt(b"hello", node_key.public_key)
        file_id = insert_file(
            dsn,
            SdaFile(
                stable_id="SYNC-123-00003",
                submission_user="user.name@example.com",
                submission_file_path="inbox/file1.c4gh",
                archive_location="http://127.0.0.1:9000/archive",
                archive_file_path="0c3b2a1e",
                archive_file_size=len(body),
                header_hex=header.hex(),
                unencrypted_sha256=sha256_hex(b"hello"),
                archived_sha256=sha256_hex(body),
            ),
        )
        insert_file(
            dsn,
            SdaFile(
                "SYNC-123-00004", "user.name@example.com", "inbox/file2.c4gh", "/archive", "5d6e", None, "", None, None
            ),
        )
        map_dataset(dsn, "SYNC-001-12345", ["SYNC-123-00003", "SYNC-123-00004"])
        map_dataset(dsn, "SYNC-001-12345", ["SYNC-123-00003"])
        with pytest.raises(LookupError):
            map_dataset(dsn, "SYNC-001-12345", ["SYNC-123-99999"])

        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT MAX(version) FROM sda.dbschema_version")
            assert cur.fetchone() == (23,)
            cur.execute(
                """
                SELECT f.id::text, f.stable_id, f.header, f.archive_file_size, c.checksum
                FROM sda.file_dataset fd
                JOIN sda.datasets d ON d.id = fd.dataset_id
                JOIN sda.files f ON f.id = fd.file_id
                LEFT JOIN sda.checksums c ON c.file_id = f.id AND c.type = 'SHA256' AND c.source = 'UNENCRYPTED'
                WHERE d.stable_id = %s ORDER BY f.stable_id
                """,
                ("SYNC-001-12345",),
            )
            rows = cur.fetchall()
            cur.execute("SELECT checksum FROM sda.checksums WHERE file_id = %s AND source = 'ARCHIVED'", (file_id,))
            assert cur.fetchone() == (sha256_hex(body),)
        conn.close()
        assert rows == [
            (file_id, "SYNC-123-00003", header.hex(), len(body), sha256_hex(b"hello")),
            (rows[1][0], "SYNC-123-00004", "", None, None),
        ]
        assert bytes.fromhex(rows[0][2]) == header
    finally:
        drop_sda_database(name)


def test_s3_server_put_get_survives_restart() -> None:
    with S3Server() as s3:
        client = s3.client()
        client.create_bucket(Bucket="archive")
        client.put_object(Bucket="archive", Key="a/b", Body=b"payload")
        assert client.get_object(Bucket="archive", Key="a/b")["Body"].read() == b"payload"

        s3.stop()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", s3.port), timeout=1).close()

        s3.start()
        assert s3.endpoint_url == f"http://127.0.0.1:{s3.port}"
        assert client.get_object(Bucket="archive", Key="a/b")["Body"].read() == b"payload"


def test_remote_api_accepts_a_valid_body(remote_api: StandInRemoteApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answer = requests.post(f"{remote_api.url}/dataset", json=VALID_BODY, auth=("sync-user", "sync-pass"), timeout=5)
    assert answer.status_code == 200
    assert remote_api.received == [VALID_BODY]
    assert remote_api.attempts == 1
    assert "POST /dataset" in caplog.text
    assert "Basic" not in caplog.text and "sync-pass" not in caplog.text


def test_remote_api_rejects_bad_credentials_and_invalid_bodies(remote_api: StandInRemoteApi) -> None:
    url = f"{remote_api.url}/dataset"
    assert requests.post(url, json=VALID_BODY, auth=("sync-user", "wrong"), timeout=5).status_code == 401
    assert requests.post(url, json=VALID_BODY, timeout=5).status_code == 401

    empty = requests.post(url, json=dict(VALID_BODY, dataset_files=[]), auth=("sync-user", "sync-pass"), timeout=5)
    assert empty.status_code == 400
    assert "dataset_files" in empty.json()["reason"]
    not_json = requests.post(url, data=b"{", auth=("sync-user", "sync-pass"), timeout=5)
    assert not_json.status_code == 400
    assert remote_api.received == []
    assert remote_api.attempts == 4


def test_remote_api_injected_faults(remote_api: StandInRemoteApi) -> None:
    def post(timeout: float = 5) -> requests.Response:
        return requests.post(
            f"{remote_api.url}/dataset", json=VALID_BODY, auth=("sync-user", "sync-pass"), timeout=timeout
        )

    remote_api.fail_next(2, status=503)
    assert [post().status_code for _ in range(3)] == [503, 503, 200]

    remote_api.fail_next_by_closing(1)
    with pytest.raises(requests.ConnectionError):
        post()

    remote_api.fail_next_by_hanging(1, seconds=0.5)
    with pytest.raises(requests.Timeout):
        post(timeout=0.1)

    remote_api.fail_next_by_hanging(1, seconds=0.2)
    assert post().status_code == 200
    assert remote_api.attempts == 6
    deadline = time.monotonic() + 2
    while len(remote_api.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(remote_api.received) == 3, "a request the client gave up on is still handled after the delay"


def test_remote_api_script_prints_accepted_bodies() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bpsync_dagster_tests.support.remote_api",
            "--port",
            str(port),
            "--user",
            "U",
            "--password",
            "P",
            "--schema",
            str(FILE_SYNC_SCHEMA),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        assert "listening" in read_line(process.stderr, timeout=30)
        answer = requests.post(f"http://127.0.0.1:{port}/dataset", json=VALID_BODY, auth=("U", "P"), timeout=5)
        assert answer.status_code == 200
        assert json.loads(read_line(process.stdout, timeout=30)) == VALID_BODY
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_remote_api_redirects_to_a_login_page_that_answers_200(remote_api: StandInRemoteApi) -> None:
    remote_api.redirect_next(1)
    remote_api.fail_next(1, status=503)

    redirected = requests.post(f"{remote_api.url}/dataset", json=VALID_BODY, allow_redirects=False, timeout=5)
    assert requests.get(f"{remote_api.url}/dataset", timeout=5).status_code == 405
    assert remote_api.faults_pending == 1, "a GET meets only redirects"
    followed = requests.get(redirected.headers["Location"], timeout=5)

    assert redirected.status_code == 302
    assert redirected.headers["Location"] == f"{remote_api.url}/login"
    assert followed.status_code == 200 and b"Sign in" in followed.content
    assert remote_api.attempts == 2
    assert remote_api.received == []
