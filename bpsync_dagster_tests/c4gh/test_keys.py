"""Loading the node's private key and the receiver's public key, with clear errors."""

import os
from base64 import b64encode
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh

from bpsync_dagster.c4gh import KeyLoadError, load_node_keys
from bpsync_dagster.c4gh.keys import load_private_key, load_public_key
from bpsync_dagster.configuration import Crypt4ghSettings
from bpsync_dagster_tests.support.crypt4gh_files import KeyPair

KeyPairs = tuple[KeyPair, KeyPair]


def pem(label: str, payload: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), b64encode(payload), label.encode())


def private_key_pem(kdf: bytes, kdf_options: bytes, cipher: bytes, private_data: bytes) -> bytes:
    encode = c4gh.encode_string
    body = c4gh.MAGIC_WORD + encode(kdf) + encode(kdf_options) + encode(cipher) + encode(private_data)
    return pem("CRYPT4GH ENCRYPTED PRIVATE KEY", body)


def test_keys_load(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs

    assert load_private_key(node.private_key_path, node.passphrase) == node.secret_key
    assert load_public_key(receiver.public_key_path) == receiver.public_key


def test_node_keys_load_from_settings(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    settings = Crypt4ghSettings(node.private_key_path, receiver.public_key_path, node.passphrase)

    keys = load_node_keys(settings)

    assert keys.secret_key == node.secret_key
    assert keys.public_key == node.public_key
    assert keys.receiver_public_key == receiver.public_key
    assert repr(node.secret_key) not in repr(keys)


def test_wrong_passphrase_is_a_clear_error(key_pairs: KeyPairs, capsys: pytest.CaptureFixture[str]) -> None:
    node, receiver = key_pairs
    settings = Crypt4ghSettings(node.private_key_path, receiver.public_key_path, "not-the-passphrase")

    with pytest.raises(KeyLoadError) as caught:
        load_node_keys(settings)

    assert "passphrase" in str(caught.value)
    assert str(node.private_key_path) in str(caught.value)
    assert capsys.readouterr() == ("", "")


def test_missing_files_name_their_config_key(tmp_path: Path, key_pairs: KeyPairs) -> None:
    with pytest.raises(KeyLoadError, match=r"^c4gh\.filePath: .* does not exist"):
        load_private_key(tmp_path / "absent.sec.pem", key_pairs[0].passphrase)
    with pytest.raises(KeyLoadError, match=r"^c4gh\.syncPubKeyPath: .* does not exist"):
        load_public_key(tmp_path / "absent.pub.pem")


@pytest.mark.parametrize(("which", "key"), [("private", "c4gh.filePath"), ("public", "c4gh.syncPubKeyPath")])
def test_unreadable_file_names_its_config_key(tmp_path: Path, key_pairs: KeyPairs, which: str, key: str) -> None:
    node, receiver = key_pairs
    source = node.private_key_path if which == "private" else receiver.public_key_path
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    path.chmod(0o000)
    if os.access(path, os.R_OK):
        pytest.skip("this user can read a file with mode 000 (root)")

    with pytest.raises(KeyLoadError, match=rf"^{key}: .* is not readable"):
        if which == "private":
            load_private_key(path, node.passphrase)
        else:
            load_public_key(path)


@pytest.mark.parametrize(
    "content",
    [
        b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt2hRtEm5cU8rTXp2RiZWNlcmZ1bGx5dGVzdGtleQ user@host\n",
        b"this is not a key at all\n",
        b"",
        os.urandom(64) + b"\xff\xfe",
        pem("CRYPT4GH PUBLIC KEY", os.urandom(31)),
        pem("CRYPT4GH PUBLIC KEY", os.urandom(33)),
        b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n!!!not base64!!!\n-----END CRYPT4GH PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA8Vb1J6ba0CfL0WdpVnZc3pWTlBuPRkjaoOHVCv/9IHI=\n-----END PUBLIC KEY-----\n",
        pem("CRYPT4GH ENCRYPTED PRIVATE KEY", os.urandom(32)),
    ],
    ids=["ssh-line", "text", "empty", "binary", "31-bytes", "33-bytes", "bad-base64", "pkcs8-pem", "private-key"],
)
def test_public_key_in_wrong_format_names_its_config_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "receiver.pub.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError, match=r"^c4gh\.syncPubKeyPath: "):
        load_public_key(path)


def test_31_byte_public_key_says_so(tmp_path: Path) -> None:
    path = tmp_path / "short.pub.pem"
    path.write_bytes(pem("CRYPT4GH PUBLIC KEY", os.urandom(31)))

    with pytest.raises(KeyLoadError, match=r"holds 31 bytes"):
        load_public_key(path)


VALID_KDF_OPTIONS = (0).to_bytes(4, "big") + b"s" * 16


@pytest.mark.parametrize(
    "content",
    [
        pem("CRYPT4GH PUBLIC KEY", os.urandom(32)),
        b"not a key\n",
        pem("CRYPT4GH ENCRYPTED PRIVATE KEY", b"c4gh-v2" + os.urandom(40)),
        pem(
            "CRYPT4GH ENCRYPTED PRIVATE KEY",
            c4gh.MAGIC_WORD + c4gh.encode_string(b"none") + c4gh.encode_string(b"none"),
        ),
        private_key_pem(b"scrypt", VALID_KDF_OPTIONS, b"aes256_gcm", os.urandom(60)),
        pem("CRYPT4GH ENCRYPTED PRIVATE KEY", c4gh.MAGIC_WORD + c4gh.encode_string(b"scrypt") + b"\x00\x40ab"),
    ],
    ids=["public-key", "text", "bad-magic", "unencrypted", "other-cipher", "truncated-options"],
)
def test_private_key_in_wrong_format_names_its_config_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.sec.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError, match=r"^c4gh\.filePath: "):
        load_private_key(path, "passphrase")


@pytest.mark.parametrize(
    "content",
    [
        private_key_pem(b"scrypt", VALID_KDF_OPTIONS, b"chacha20_poly1305", b"short"),
        private_key_pem(b"bcrypt", VALID_KDF_OPTIONS, b"chacha20_poly1305", os.urandom(60)),
    ],
    ids=["private-data-shorter-than-nonce", "bcrypt-zero-rounds"],
)
def test_corrupt_private_key_data_is_a_key_load_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.sec.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError, match=r"^c4gh\.filePath: "):
        load_private_key(path, "passphrase")
