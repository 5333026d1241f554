"""Crypt4GH keys and files for tests, built with the `crypt4gh` package."""

import hashlib
import io
import os
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from crypt4gh import SEGMENT_SIZE, lib
from crypt4gh import header as c4gh_header
from crypt4gh.keys import c4gh, get_private_key
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CHACHA20_POLY1305 = 0


@dataclass(frozen=True)
class KeyPair:
    """A crypt4gh key pair on disk plus its raw key material."""

    private_key_path: Path
    public_key_path: Path
    passphrase: str
    secret_key: bytes
    public_key: bytes


def _pem(label: str, payload: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        label.encode(),
        b64encode(payload),
        label.encode(),
    )


def make_key_pair(directory: Path, name: str, passphrase: str) -> KeyPair:
    """Write `<name>.sec.pem` (passphrase-protected) and `<name>.pub.pem` in crypt4gh format."""
    private_key = X25519PrivateKey.generate()
    secret_key = private_key.private_bytes_raw()
    public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    private_key_path = directory / f"{name}.sec.pem"
    public_key_path = directory / f"{name}.pub.pem"
    encoded = c4gh.encode_private_key(secret_key, passphrase.encode(), None)
    private_key_path.write_bytes(_pem("CRYPT4GH ENCRYPTED PRIVATE KEY", encoded))
    private_key_path.chmod(0o600)
    public_key_path.write_bytes(_pem("CRYPT4GH PUBLIC KEY", public_key))
    if get_private_key(str(private_key_path), lambda: passphrase) != secret_key:
        raise RuntimeError(f"crypt4gh does not load back {private_key_path}")
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
