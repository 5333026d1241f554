"""Re-encrypt a crypt4gh header for another recipient without touching the data it protects."""

import io
import os

from crypt4gh import header as c4gh_header

from bpsync_dagster.errors import SyncError

X25519_CHACHA20 = 0


class HeaderError(SyncError):
    """A header that is malformed or cannot be opened with the node's key."""


def reencrypt_header(header: bytes, node_secret_key: bytes, receiver_public_key: bytes) -> bytes:
    """The header re-encrypted for `receiver_public_key`.

    Keeps every packet the node key opens (data keys and edit list), drops the packets it cannot
    open, and encrypts with a fresh writer key, so the bytes differ on every call.
    """
    stream = io.BytesIO(header)
    try:
        packets = list(c4gh_header.parse(stream))
    except ValueError as error:
        raise HeaderError(f"malformed crypt4gh header: {error}") from error
    trailing = len(header) - stream.tell()
    if trailing:
        raise HeaderError(f"malformed crypt4gh header: {trailing} bytes after its last packet")
    opened, _others = c4gh_header.decrypt(packets, [(X25519_CHACHA20, node_secret_key, None)])
    if not opened:
        raise HeaderError("the node's private key (c4gh.filePath) opens no packet of the header")
    try:
        data_packets, _edit_list = c4gh_header.partition_packets(opened)
    except ValueError as error:
        raise HeaderError(f"invalid crypt4gh header: {error}") from error
    if not data_packets:
        raise HeaderError("the header holds no data encryption key")
    writer_key = os.urandom(32)
    recipients = [(X25519_CHACHA20, writer_key, receiver_public_key)]
    return c4gh_header.serialize(
        encrypted for packet in opened for encrypted in c4gh_header.encrypt(packet, recipients)
    )
