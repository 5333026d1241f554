"""Re-encrypting a crypt4gh header for the receiver without touching the body."""

import io
import logging
import os
from collections.abc import Callable

import pytest
from crypt4gh import header as c4gh_header
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bpsync_dagster.c4gh import HeaderError, reencrypt_header
from bpsync_dagster_tests.support.crypt4gh_files import (
    KeyPair,
    decrypt,
    encrypt,
    encrypt_with_edit_list,
)

KeyPairs = tuple[KeyPair, KeyPair]
PLAINTEXT = os.urandom(70_000)
EDIT_LIST = [10, 100, 50, 200, 65_000, 300]
EDITED_PLAINTEXT = PLAINTEXT[10:110] + PLAINTEXT[160:360] + PLAINTEXT[65_360:65_660]


def raw_key_pair() -> tuple[bytes, bytes]:
    private_key = X25519PrivateKey.generate()
    return private_key.private_bytes_raw(), private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def packet_count(header: bytes) -> int:
    return len(list(c4gh_header.parse(io.BytesIO(header))))


def opened_packets(header: bytes, secret_key: bytes) -> list[bytes]:
    opened, _ = c4gh_header.decrypt(c4gh_header.parse(io.BytesIO(header)), [(0, secret_key, None)])
    return opened


def test_one_key_header_is_124_bytes_and_opens_only_with_the_receiver_key(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    header, body = encrypt(PLAINTEXT, node.public_key)

    new_header = reencrypt_header(header, node.secret_key, receiver.public_key)

    assert len(new_header) == 124
    assert decrypt(new_header, body, receiver.secret_key) == PLAINTEXT
    assert opened_packets(new_header, node.secret_key) == []
    with pytest.raises(ValueError):
        decrypt(new_header, body, node.secret_key)


def test_reencrypted_header_differs_on_every_call(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    header, _ = encrypt(PLAINTEXT, node.public_key)

    headers = {reencrypt_header(header, node.secret_key, receiver.public_key) for _ in range(5)}

    assert len(headers) == 5
    assert header not in headers
    writer_keys = {h[24:56] for h in headers}  # the ephemeral public key of the first packet
    assert len(writer_keys) == 5


def test_edit_list_is_kept(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    header, body = encrypt_with_edit_list(PLAINTEXT, node.public_key, EDIT_LIST)

    new_header = reencrypt_header(header, node.secret_key, receiver.public_key)

    assert packet_count(new_header) == 2
    assert sorted(opened_packets(new_header, receiver.secret_key)) == sorted(opened_packets(header, node.secret_key))
    assert decrypt(new_header, body, receiver.secret_key) == EDITED_PLAINTEXT


@pytest.mark.parametrize("node_first", [True, False])
def test_packets_for_another_recipient_are_dropped(key_pairs: KeyPairs, node_first: bool) -> None:
    node, receiver = key_pairs
    other_secret, other_public = raw_key_pair()
    first, second = (node.public_key, other_public) if node_first else (other_public, node.public_key)
    header, body = encrypt_with_edit_list(PLAINTEXT, first, EDIT_LIST, extra_recipient_public_key=second)
    assert packet_count(header) == 4

    new_header = reencrypt_header(header, node.secret_key, receiver.public_key)

    assert packet_count(new_header) == 2
    assert len(opened_packets(new_header, receiver.secret_key)) == 2
    assert opened_packets(new_header, other_secret) == []
    assert decrypt(new_header, body, receiver.secret_key) == EDITED_PLAINTEXT


@pytest.fixture
def header_and_keys(key_pairs: KeyPairs) -> tuple[bytes, bytes, bytes]:
    node, receiver = key_pairs
    header, _ = encrypt(PLAINTEXT, node.public_key)
    return header, node.secret_key, receiver.public_key


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda h: b"crypt5gh" + h[8:], r"^malformed crypt4gh header: Not a CRYPT4GH formatted file"),
        (
            lambda h: h[:8] + (2).to_bytes(4, "little") + h[12:],
            r"^malformed crypt4gh header: Unsupported CRYPT4GH version",
        ),
        (lambda h: h[:12] + (2).to_bytes(4, "little") + h[16:], r"^malformed crypt4gh header: "),
        (lambda h: h[:10], r"^malformed crypt4gh header: Header too small"),
        (lambda h: h[:-1], r"^malformed crypt4gh header: Packet 0 too small"),
        (lambda h: h + b"\x00", r"^malformed crypt4gh header: 1 bytes after its last packet"),
        (lambda h: h + h[16:], r"^malformed crypt4gh header: 108 bytes after its last packet"),
        (lambda h: h[:-1] + bytes([h[-1] ^ 1]), r"^the node's private key \(c4gh\.filePath\) opens no packet"),
        (lambda h: b"", r"^malformed crypt4gh header: Header too small"),
    ],
    ids=[
        "magic",
        "version",
        "count",
        "truncated-envelope",
        "truncated-packet",
        "trailing-byte",
        "trailing-packet",
        "bad-mac",
        "empty",
    ],
)
def test_damaged_header_is_a_header_error(
    header_and_keys: tuple[bytes, bytes, bytes], damage: Callable[[bytes], bytes], message: str
) -> None:
    header, node_secret, receiver_public = header_and_keys

    with pytest.raises(HeaderError, match=message):
        reencrypt_header(damage(header), node_secret, receiver_public)


def test_every_truncation_and_every_flipped_byte_is_a_header_error(header_and_keys: tuple[bytes, bytes, bytes]) -> None:
    header, node_secret, receiver_public = header_and_keys
    damaged = [header[:length] for length in range(len(header))]
    damaged += [header[:i] + bytes([header[i] ^ 0x80]) + header[i + 1 :] for i in range(len(header))]

    for bad in damaged:
        with pytest.raises(HeaderError):
            reencrypt_header(bad, node_secret, receiver_public)


def test_header_for_another_key_is_a_header_error(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    header, _ = encrypt(PLAINTEXT, receiver.public_key)

    with pytest.raises(HeaderError, match=r"^the node's private key \(c4gh\.filePath\) opens no packet of the header$"):
        reencrypt_header(header, node.secret_key, receiver.public_key)


def test_header_with_only_an_edit_list_is_a_header_error(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    packet = c4gh_header.make_packet_data_edit_list([0, 10])
    header = c4gh_header.serialize(c4gh_header.encrypt(packet, [(0, os.urandom(32), node.public_key)]))

    with pytest.raises(HeaderError, match="no data encryption key"):
        reencrypt_header(header, node.secret_key, receiver.public_key)


def test_header_with_an_unknown_packet_type_is_a_header_error(key_pairs: KeyPairs) -> None:
    node, receiver = key_pairs
    packet = (7).to_bytes(4, "little") + os.urandom(32)
    header = c4gh_header.serialize(c4gh_header.encrypt(packet, [(0, os.urandom(32), node.public_key)]))

    with pytest.raises(HeaderError, match=r"^invalid crypt4gh header: Invalid packet type 7"):
        reencrypt_header(header, node.secret_key, receiver.public_key)


def test_crypt4gh_logs_no_key_material(key_pairs: KeyPairs, caplog: pytest.LogCaptureFixture) -> None:
    node, receiver = key_pairs
    header, _ = encrypt(PLAINTEXT, node.public_key)
    session_packet = opened_packets(header, node.secret_key)[0]
    foreign_header, _ = encrypt(PLAINTEXT, receiver.public_key)
    caplog.set_level(logging.DEBUG)

    reencrypt_header(header, node.secret_key, receiver.public_key)
    with pytest.raises(HeaderError):
        reencrypt_header(foreign_header, node.secret_key, receiver.public_key)

    logged = caplog.text.lower()
    assert node.secret_key.hex() not in logged
    assert session_packet.hex() not in logged
    assert session_packet[4:].hex() not in logged
