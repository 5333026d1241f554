"""`bpsync sync` with node and receiver keys made by crypt4gh-keygen, ssh-keygen and openssl; every
synced object is opened by the `crypt4gh decrypt` command with the receiver's own key file."""

import itertools
import os
from pathlib import Path

import pytest

from bpsync_dagster.c4gh import fingerprint
from bpsync_dagster_tests.support import key_tools
from bpsync_dagster_tests.support.environment import NODE_PASSPHRASE, Node
from bpsync_dagster_tests.support.key_formats import (
    PRIVATE_KEY_FORMATS,
    PUBLIC_KEY_FORMATS,
    KeyFormat,
    crypt4gh_cli_key,
    openssl_x25519,
    ssh_keygen_unencrypted,
)

RECEIVER_PASSPHRASE = "receiver-key-passphrase-7e2"
# Each node-key format once, each receiver-key format at least three times: one sync per pair.
PAIRS = list(zip(PRIVATE_KEY_FORMATS, itertools.cycle(PUBLIC_KEY_FORMATS), strict=False))


@pytest.mark.parametrize(
    ("node_format", "receiver_format"),
    PAIRS,
    ids=[f"node-{node.name}--receiver-{receiver.name}" for node, receiver in PAIRS],
)
def test_a_sync_with_real_tool_keys_decrypts_with_the_crypt4gh_command(
    make_node, tmp_path: Path, node_format: KeyFormat, receiver_format: KeyFormat
) -> None:
    node: Node = make_node("posix", "posix")
    keys = tmp_path / "real-keys"
    keys.mkdir()
    node.node_keys = node_format.make(keys, "node", NODE_PASSPHRASE)
    node.receiver_keys = receiver_format.make(keys, "receiver", RECEIVER_PASSPHRASE)
    dataset_id = node.dataset_id(node_format.name)
    files = node.add_dataset(dataset_id, [("small.txt.c4gh", b"small\n" * 7), ("random.bin.c4gh", os.urandom(70_000))])

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    assert f"dataset {dataset_id} synced: 2 files copied" in result.stdout
    receiver_key_file = crypt4gh_cli_key(node.receiver_keys)
    for item in files:
        synced = node.synced_object(item.path)
        assert synced is not None
        assert key_tools.crypt4gh_decrypt(synced, receiver_key_file, RECEIVER_PASSPHRASE) == item.plaintext
    unprotected = f"the private key {node.node_keys.private_key_path} is not protected by a passphrase"
    assert (unprotected in result.stderr) == (not node_format.encrypted)


def test_check_prints_the_format_and_fingerprint_of_each_key(make_node, tmp_path: Path) -> None:
    node: Node = make_node("posix", "posix")
    node.node_keys = ssh_keygen_unencrypted(tmp_path, "id_ed25519", "")
    node.receiver_keys = openssl_x25519(tmp_path, "receiver", RECEIVER_PASSPHRASE)

    lines = node.bpsync("check").stdout.splitlines()

    node_line = next(line for line in lines if line.startswith("crypt4gh node private key"))
    assert node_line == (
        f"crypt4gh node private key {node.node_keys.private_key_path}: ok (read as OpenSSH ed25519 (unencrypted); "
        f"public key fingerprint {fingerprint(node.node_keys.public_key)}); warning: c4gh.filePath: the private key "
        f"{node.node_keys.private_key_path} is not protected by a passphrase; anyone who can read the file can "
        "decrypt what is sent to this node"
    )
    assert (
        f"crypt4gh receiver public key {node.receiver_keys.public_key_path}: ok (read as SubjectPublicKeyInfo X25519; "
        f"fingerprint {fingerprint(node.receiver_keys.public_key)})"
    ) in lines
