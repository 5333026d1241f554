"""Load the node's private key and the receiver's public key, failing with a clear error."""

import io
from base64 import b64decode
from binascii import Error as Base64Error
from dataclasses import dataclass, field
from pathlib import Path

from crypt4gh import sodium
from crypt4gh.keys import c4gh
from crypt4gh.keys.kdf import KDFS, derive_key
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from bpsync_dagster.configuration import Crypt4ghSettings

PRIVATE_KEY_HEADER = "-----BEGIN CRYPT4GH ENCRYPTED PRIVATE KEY-----"
PUBLIC_KEY_HEADER = "-----BEGIN CRYPT4GH PUBLIC KEY-----"
KEY_LENGTH = 32


class KeyLoadError(Exception):
    """A key that cannot be read, parsed or unlocked; the message names the config key and file."""


@dataclass(frozen=True)
class NodeKeys:
    """The node's secret key (it opens archived headers) and the receiver's public key."""

    secret_key: bytes = field(repr=False)
    receiver_public_key: bytes

    @property
    def public_key(self) -> bytes:
        return sodium.derive_pk(self.secret_key)


def load_node_keys(settings: Crypt4ghSettings) -> NodeKeys:
    return NodeKeys(
        secret_key=load_private_key(settings.private_key_path, settings.passphrase),
        receiver_public_key=load_public_key(settings.receiver_public_key_path),
    )


def _pem_body(path: Path, expected_header: str, key: str, what: str) -> bytes:
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise KeyLoadError(f"{key}: {what} {path} does not exist") from None
    except PermissionError:
        raise KeyLoadError(f"{key}: {what} {path} is not readable (permission denied)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeyLoadError(f"{key}: {what} {path} cannot be read ({error})") from None
    if len(lines) < 3 or lines[0] != expected_header or not lines[-1].startswith("-----END "):
        raise KeyLoadError(f"{key}: {path} is not a {what} in crypt4gh format ({expected_header})")
    try:
        return b64decode("".join(lines[1:-1]), validate=True)
    except Base64Error:
        raise KeyLoadError(f"{key}: {path} is not a {what} in crypt4gh format (bad base64)") from None


def load_public_key(path: Path) -> bytes:
    key = _pem_body(path, PUBLIC_KEY_HEADER, "c4gh.syncPubKeyPath", "public key")
    if len(key) != KEY_LENGTH:
        raise KeyLoadError(f"c4gh.syncPubKeyPath: {path} holds {len(key)} bytes, not a 32-byte crypt4gh public key")
    return key


def load_private_key(path: Path, passphrase: str) -> bytes:
    """The raw X25519 secret key of a passphrase-protected crypt4gh private key file."""
    stream = io.BytesIO(_pem_body(path, PRIVATE_KEY_HEADER, "c4gh.filePath", "private key"))
    malformed = KeyLoadError(f"c4gh.filePath: {path} is not a valid crypt4gh private key")
    try:
        if stream.read(len(c4gh.MAGIC_WORD)) != c4gh.MAGIC_WORD:
            raise malformed
        kdf_name = c4gh.decode_string(stream)
        if kdf_name not in KDFS:
            raise KeyLoadError(
                f"c4gh.filePath: {path} is not passphrase-protected (kdf {kdf_name.decode(errors='replace')})"
            )
        kdf_options = c4gh.decode_string(stream)
        cipher_name = c4gh.decode_string(stream)
        private_data = c4gh.decode_string(stream)
    except (ValueError, IndexError):
        raise malformed from None
    if cipher_name != b"chacha20_poly1305":
        raise KeyLoadError(f"c4gh.filePath: {path} uses the unsupported cipher {cipher_name.decode(errors='replace')}")
    rounds = int.from_bytes(kdf_options[:4], byteorder="big")
    try:
        shared_key = derive_key(kdf_name, passphrase.encode(), kdf_options[4:], rounds)
        secret_key = ChaCha20Poly1305(shared_key).decrypt(private_data[:12], private_data[12:], None)
    except InvalidTag:
        raise KeyLoadError(f"c4gh.passphrase: wrong passphrase for the private key {path} (c4gh.filePath)") from None
    except ValueError:
        raise malformed from None
    if len(secret_key) != KEY_LENGTH:
        raise malformed
    return secret_key
