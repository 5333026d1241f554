"""Crypt4GH keys and files for tests: keys made by `crypt4gh-keygen`, files by the `crypt4gh` package."""

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from crypt4gh import SEGMENT_SIZE, lib, sodium
from crypt4gh import header as c4gh_header
from crypt4gh.keys import get_private_key, get_public_key
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bpsync_dagster_tests.support import key_tools

CHACHA20_POLY1305 = 0


@dataclass(frozen=True)
class KeyPair:
    """A key pair on disk plus its raw X25519 key material; `passphrase` is "" for an unprotected file."""

    private_key_path: Path
    public_key_path: Path
    passphrase: str
    secret_key: bytes
    public_key: bytes


def make_key_pair(directory: Path, name: str, passphrase: str) -> KeyPair:
    """`<name>.sec.pem` (passphrase-protected) and `<name>.pub.pem`, made by `crypt4gh-keygen`;
    the raw keys as the crypt4gh package reads them back."""
    private_key_path = directory / f"{name}.sec.pem"
    public_key_path = directory / f"{name}.pub.pem"
    key_tools.crypt4gh_keygen(private_key_path, public_key_path, passphrase)
    secret_key = get_private_key(str(private_key_path), lambda: passphrase)
    public_key = get_public_key(str(public_key_path))
    if sodium.derive_pk(secret_key) != public_key:
        raise RuntimeError(f"{public_key_path} is not the public key of {private_key_path}")
    return KeyPair(private_key_path, public_key_path, passphrase, secret_key, public_key)


def encrypt(plaintext: bytes, recipient_public_key: bytes) -> tuple[bytes, bytes]:
    """Encrypt for one recipient with a fresh writer key; return (header, body)."""
    header_out, body_out = io.BytesIO(), io.BytesIO()
    keys = [(CHACHA20_POLY1305, os.urandom(32), recipient_public_key)]
    lib.encrypt(keys, io.BytesIO(plaintext), body_out, headerfile=header_out)
    return header_out.getvalue(), body_out.getvalue()


def _encrypt_body(plaintext: bytes, session_key: bytes) -> bytes:
    cipher = ChaCha20Poly1305(session_key)
    segments: list[bytes] = []
    for start in range(0, len(plaintext), SEGMENT_SIZE):
        nonce = os.urandom(12)
        segments.append(nonce + cipher.encrypt(nonce, plaintext[start : start + SEGMENT_SIZE], None))
    return b"".join(segments)


def encrypt_with_edit_list(
    plaintext: bytes,
    recipient_public_key: bytes,
    edit_list: list[int],
    extra_recipient_public_key: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Encrypt with a data-key packet and an edit-list packet per recipient; return (header, body).

    With `extra_recipient_public_key`, the header also holds both packets for that second key,
    placed after the first recipient's, so each key meets packets it cannot open.
    """
    session_key = os.urandom(32)
    writer_secret_key = os.urandom(32)
    recipients = [recipient_public_key]
    if extra_recipient_public_key is not None:
        recipients.append(extra_recipient_public_key)
    plain_packets = [
        c4gh_header.make_packet_data_enc(CHACHA20_POLY1305, session_key),
        c4gh_header.make_packet_data_edit_list(edit_list),
    ]
    packets = [
        encrypted
        for public_key in recipients
        for packet in plain_packets
        for encrypted in c4gh_header.encrypt(packet, [(CHACHA20_POLY1305, writer_secret_key, public_key)])
    ]
    return c4gh_header.serialize(packets), _encrypt_body(plaintext, session_key)


def decrypt(header: bytes, body: bytes, secret_key: bytes) -> bytes:
    """Decrypt a whole crypt4gh file, honouring its edit list; ValueError if the key opens no packet."""
    keys = [(CHACHA20_POLY1305, secret_key, None)]
    opened, _ = c4gh_header.decrypt(c4gh_header.parse(io.BytesIO(header)), keys)
    if not opened:
        raise ValueError("no crypt4gh header packet can be opened with this key")
    out = io.BytesIO()
    lib.decrypt(keys, io.BytesIO(header + body), out)
    return out.getvalue()


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()
