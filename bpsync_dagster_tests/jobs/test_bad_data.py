"""Bad data in the SDA database or the archive, through the real `bpsync sync`: the sync fails with
one line naming the dataset, each bad file and its cause, with no traceback, nothing copied and
nothing POSTed; a header with several data keys and an edit list syncs and decrypts correctly."""

import io
import json
import os
import subprocess
from contextlib import closing

import psycopg2
import pytest
from crypt4gh import header as c4gh_header
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from dagster._serdes import serialize_value

from bpsync_dagster_tests.support import crypt4gh_files
from bpsync_dagster_tests.support.crypt4gh_files import CHACHA20_POLY1305, KeyPair
from bpsync_dagster_tests.support.environment import ARCHIVE_BUCKET, SDA_DB_DATASETS_USER, Node, split_crypt4gh

SEGMENT = 65536


def failure_line(result: subprocess.CompletedProcess[str], dataset_id: str) -> str:
    """The one stderr line giving the reason; checks the exit status and that no traceback is shown."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith(f"bpsync: dataset {dataset_id}: ")]
    assert "sync failed" in line
    return line


def assert_nothing_left(node: Node) -> None:
    assert node.visible_sync_names() == []
    assert node.remote.attempts == 0


@pytest.mark.parametrize("sync", ["posix", "s3"])
def test_every_unsyncable_record_is_named_before_anything_is_copied(make_node, sync: str) -> None:
    node: Node = make_node("posix", sync)
    node.database_user = SDA_DB_DATASETS_USER
    dataset_id = node.dataset_id("records")
    other_dataset = node.dataset_id("other")
    good = node.add_file(f"{dataset_id}-GOOD", f"{node.prefix}/good.c4gh", b"good")
    cases = {
        "HEX": ({"path": f"{node.prefix}/hex.c4gh", "header": b"not hex"}, "the header is not valid hex"),
        "ABS": ({"path": f"/{node.prefix}/absolute.c4gh"}, "submission_file_path is absolute"),
        "DOTDOT": ({"path": f"{node.prefix}/../../escape.c4gh"}, "submission_file_path contains '..'"),
        "EMPTY": ({"path": ""}, "submission_file_path is empty"),
        "CTRL": ({"path": f"{node.prefix}/bell\x07\n.c4gh"}, "submission_file_path contains control characters"),
        "LONGNAME": (
            {"path": f"{node.prefix}/{'n' * 256}"},
            "submission_file_path has a component longer than 255 bytes",
        ),
        "LONGPATH": (
            {"path": "/".join([node.prefix] + ["d" * 200] * 6)},
            "submission_file_path is longer than 1024 bytes",
        ),
        "OTHER": (
            {"path": f"{node.prefix}/other.c4gh", "dataset": other_dataset},
            f"the file belongs to dataset {other_dataset}, not {dataset_id}",
        ),
    }
    for name, (spec, _) in cases.items():
        item = node.add_file(f"{dataset_id}-{name}", spec["path"], name.encode())
        node.map_dataset(spec.get("dataset", dataset_id), [item.accession_id])
        if "header" in spec:
            with closing(psycopg2.connect(node.sda_dsn)) as connection, connection, connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE sda.files SET header = %s WHERE stable_id = %s", (spec["header"], item.accession_id)
                )
    node.map_dataset(dataset_id, [good.accession_id])
    unknown = f"{dataset_id}-UNKNOWN"
    requested = [good.accession_id, unknown, *(f"{dataset_id}-{name}" for name in cases)]

    result = node.bpsync("sync", dataset_id, *requested)

    line = failure_line(result, dataset_id)
    assert f"{unknown}: not in sda.files" in line
    for name, (_, cause) in cases.items():
        assert f"{dataset_id}-{name} (" in line and cause in line, name
    assert good.accession_id not in line
    assert "bell\\x07\\n.c4gh" in line
    assert_nothing_left(node)


def test_two_files_with_one_submission_file_path_are_refused_for_good_before_anything_is_copied(make_node) -> None:
    node: Node = make_node("posix", "s3")
    dataset_id = node.dataset_id("same-path")
    path = f"{node.prefix}/same.c4gh"
    first = node.add_file(f"{dataset_id}-F1", path, b"first file")
    second = node.add_file(f"{dataset_id}-F2", path, b"second file")
    node.map_dataset(dataset_id, [first.accession_id, second.accession_id])

    result = node.sync_mapped(dataset_id)

    line = failure_line(result, dataset_id)
    assert f"{first.accession_id} and {second.accession_id} have the same submission_file_path '{path}'" in line
    assert "in step fetch_file_records" in line
    assert "will retry" not in result.stdout
    assert_nothing_left(node)


def event_log_texts(node: Node, result: subprocess.CompletedProcess[str]) -> list[str]:
    """Every string in the run's event log: messages, log lines, metadata, failure descriptions."""
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    texts: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for item in value.items():
                walk(list(item))
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for entry in node.instance().all_logs(run_id):
        walk(json.loads(serialize_value(entry)))
    return texts


def test_terminal_controls_in_a_path_are_escaped_in_the_run_logs_and_metadata(make_node) -> None:
    node: Node = make_node("posix", "posix")
    raw = ("\x1b", "\u202e", "\u2066")
    synced_id, refused_id = node.dataset_id("bidi"), node.dataset_id("esc")
    synced_path = f"{node.prefix}/report\u202efdp.exe\u2066.c4gh"
    refused_path = f"{node.prefix}/\x1b[2Jcleared\u202e.c4gh"
    node.add_dataset(synced_id, [(synced_path.split("/", 1)[1], b"bidi")])
    node.add_dataset(refused_id, [(refused_path.split("/", 1)[1], b"esc")])

    synced = node.sync_mapped(synced_id)
    refused = node.sync_mapped(refused_id)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert node.synced_object(synced_path) is not None, "the object has the path as the database holds it"
    texts = event_log_texts(node, synced)
    assert not [text for text in texts if any(char in text for char in raw)]
    shown = f"{node.prefix}/report\\u202efdp.exe\\u2066.c4gh"
    assert any(text.endswith(shown) for text in texts), "the files table of copy_files"
    assert any("files in place" in text and shown in text for text in texts), "the progress line"
    line = failure_line(refused, refused_id)
    assert "\\x1b[2Jcleared\\u202e.c4gh" in line
    texts = event_log_texts(node, refused)
    assert not [text for text in texts + [refused.stdout + refused.stderr] if any(char in text for char in raw)]
    assert any("\\x1b[2Jcleared\\u202e.c4gh" in text for text in texts)


def test_postgres_refuses_a_nul_in_submission_file_path(make_node) -> None:
    """NUL cannot reach a sync: the SDA database cannot store it (records.py refuses it all the same)."""
    node: Node = make_node("posix", "posix")

    with pytest.raises(ValueError, match="NUL"):
        node.add_file(node.dataset_id("nul") + "-F1", f"{node.prefix}/nul\x00.c4gh", b"nul")


def test_headers_the_node_key_cannot_use_are_all_named(make_node, key_pairs: tuple[KeyPair, KeyPair]) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("headers")
    plaintext = b"secret data"
    node_header, node_body = crypt4gh_files.encrypt(plaintext, node.node_keys.public_key)
    receiver_header, receiver_body = crypt4gh_files.encrypt(plaintext, key_pairs[1].public_key)
    edit_list_only = c4gh_header.serialize(
        c4gh_header.encrypt(
            c4gh_header.make_packet_data_edit_list([1, 2]),
            [(CHACHA20_POLY1305, os.urandom(32), node.node_keys.public_key)],
        )
    )
    cases = {
        "FOREIGN": (receiver_header, receiver_body, "the node's private key (c4gh.filePath) opens no packet"),
        "TRUNCATED": (node_header[:-20], node_body, "malformed crypt4gh header"),
        "TRAILING": (node_header + b"\x00" * 8, node_body, "malformed crypt4gh header: 8 bytes after its last packet"),
        "NOTC4GH": (b"\x00" * 40, node_body, "malformed crypt4gh header"),
        "NOKEY": (edit_list_only, node_body, "the header holds no data encryption key"),
    }
    for name, (header, body, _) in cases.items():
        node.add_file(f"{dataset_id}-{name}", f"{node.prefix}/{name}.c4gh", plaintext, header=header, body=body)
    node.map_dataset(dataset_id, [f"{dataset_id}-{name}" for name in cases])

    result = node.sync_mapped(dataset_id)

    line = failure_line(result, dataset_id)
    assert "in step reencrypt_headers" in line and "cannot re-encrypt headers" in line
    for name, (_, _, cause) in cases.items():
        assert f"{dataset_id}-{name} ('{node.prefix}/{name}.c4gh'): {cause}" in line, name
    assert_nothing_left(node)


def edited(plaintext: bytes, edit_list: list[int]) -> bytes:
    """The plaintext a crypt4gh reader returns: skip, keep, skip, keep, … (a last skip keeps the rest)."""
    kept, position = [], 0
    for index, length in enumerate(edit_list):
        if index % 2:
            kept.append(plaintext[position : position + length])
        position += length
    if len(edit_list) % 2:
        kept.append(plaintext[position:])
    return b"".join(kept)


def several_keys_and_edit_list(plaintext: bytes, node_key: bytes, edit_list: list[int]) -> tuple[bytes, bytes]:
    """Segments alternately encrypted with two data keys; the node key gets both keys and the edit
    list, and a third recipient's packets come first (the re-encryption must drop them)."""
    session_keys = [os.urandom(32), os.urandom(32)]
    body = b"".join(
        crypt4gh_files._encrypt_body(plaintext[start : start + SEGMENT], session_keys[(start // SEGMENT) % 2])
        for start in range(0, len(plaintext), SEGMENT)
    )
    plain_packets = [c4gh_header.make_packet_data_enc(CHACHA20_POLY1305, key) for key in session_keys]
    plain_packets.append(c4gh_header.make_packet_data_edit_list(edit_list))
    third_party = X25519PrivateKey.generate().public_key().public_bytes_raw()
    packets = [
        encrypted
        for recipient in (third_party, node_key)
        for packet in plain_packets
        for encrypted in c4gh_header.encrypt(packet, [(CHACHA20_POLY1305, os.urandom(32), recipient)])
    ]
    return c4gh_header.serialize(packets), body


def test_a_header_with_several_data_keys_and_an_edit_list_syncs_to_the_edited_plaintext(make_node) -> None:
    node: Node = make_node("posix", "s3")
    dataset_id = node.dataset_id("multikey")
    plaintext = os.urandom(3 * SEGMENT + 1234)
    edit_list = [100, SEGMENT, 7, SEGMENT + 500, 3]
    header, body = several_keys_and_edit_list(plaintext, node.node_keys.public_key, edit_list)
    assert crypt4gh_files.decrypt(header, body, node.node_keys.secret_key) == edited(plaintext, edit_list)
    item = node.add_file(f"{dataset_id}-F1", f"{node.prefix}/multikey.c4gh", plaintext, header=header, body=body)
    node.map_dataset(dataset_id, [item.accession_id])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    assert node.decrypt_synced(item.path) == edited(plaintext, edit_list)
    synced_header, synced_body = split_crypt4gh(node.synced_object(item.path))
    assert synced_body == body
    assert len(list(c4gh_header.parse(io.BytesIO(synced_header)))) == 3
    with pytest.raises(ValueError):
        crypt4gh_files.decrypt(synced_header, synced_body, node.node_keys.secret_key)


@pytest.mark.parametrize(
    ("archive", "sync", "defect", "cause"),
    [
        ("s3", "posix", "missing", "does not exist (S3 404)"),
        ("posix", "s3", "shorter", "is 1000 bytes but sda.files.archive_file_size says 1010"),
        ("posix", "posix", "longer", "is 1000 bytes but sda.files.archive_file_size says 990"),
    ],
)
def test_an_archived_body_that_does_not_match_its_record_fails_clearly(
    make_node, archive: str, sync: str, defect: str, cause: str
) -> None:
    """A missing POSIX body and a longer S3 one are in `test_sync_dataset_failures.py`."""
    node: Node = make_node(archive, sync)
    dataset_id = node.dataset_id(f"body-{defect}")
    header, body = crypt4gh_files.encrypt(os.urandom(1000 - 28), node.node_keys.public_key)
    assert len(body) == 1000
    recorded_size = {"shorter": 1010, "longer": 990}.get(defect)
    item = node.add_file(
        f"{dataset_id}-F1", f"{node.prefix}/body.c4gh", b"", header=header, body=body, archive_file_size=recorded_size
    )
    node.map_dataset(dataset_id, [item.accession_id])
    if defect == "missing":
        archive_name = f"{node.prefix}/{node.archived_body_path(item.accession_id).name}"
        node.s3.client().delete_object(Bucket=ARCHIVE_BUCKET, Key=archive_name)

    result = node.sync_mapped(dataset_id)

    line = failure_line(result, dataset_id)
    assert "in step copy_files[0]" in line
    assert f"{item.accession_id} ('{item.path}'): archived body " in line and cause in line
    assert_nothing_left(node)
