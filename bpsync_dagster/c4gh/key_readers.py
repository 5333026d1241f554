"""One reader per key format, each handing the file to the library that reads that format.

The crypt4gh package reads its own format and OpenSSH ed25519 keys (converting them to X25519);
`cryptography` reads PKCS#8 and SubjectPublicKeyInfo. Every failure of those libraries, including
crypt4gh's `sys.exit` on a wrong passphrase, becomes one `KeyLoadError` line naming the config key
and the file.
"""

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from crypt4gh import sodium
from crypt4gh.keys import c4gh, get_private_key, get_public_key, load_from_pem, ssh
from crypt4gh.keys.kdf import KDFS
from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from bpsync_dagster.errors import SyncError

PRIVATE_KEY = "c4gh.filePath"
PUBLIC_KEY = "c4gh.syncPubKeyPath"
PRIVATE_FORMATS = (
    "crypt4gh (CRYPT4GH PRIVATE KEY or CRYPT4GH ENCRYPTED PRIVATE KEY), OpenSSH ed25519, PKCS#8 X25519 PEM"
)
PUBLIC_FORMATS = "crypt4gh (CRYPT4GH PUBLIC KEY), an OpenSSH ssh-ed25519 line, SubjectPublicKeyInfo X25519 PEM"
PYTHON_LABEL = "CRYPT4GH PRIVATE KEY"
KEY_LENGTH = 32

T = TypeVar("T")


class KeyLoadError(SyncError):
    """A key that cannot be read, parsed or unlocked; the message names the config key and file."""


@dataclass(frozen=True)
class PrivateKey:
    """An X25519 secret key, the format its file was read as, and a warning when the file is unprotected."""

    secret_key: bytes = field(repr=False)
    format: str
    warning: str | None = None

    @property
    def public_key(self) -> bytes:
        return sodium.derive_pk(self.secret_key)


@dataclass(frozen=True)
class PublicKey:
    """An X25519 public key and the format its file was read as."""

    public_key: bytes
    format: str


def _detail(error: BaseException) -> str:
    """What a library said went wrong, without the general advice `cryptography` puts before it."""
    return str(error).rsplit("Details: ", 1)[-1] or type(error).__name__


def _quietly(read: Callable[[], T]) -> T:
    """Run a crypt4gh reader. On any error it prints to stderr and calls `sys.exit`; this keeps
    stderr clean and raises the error that made it exit instead."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            return read()
        except SystemExit as exit_:
            # from None: the SystemExit is how the reader gives up, not a cause of the error it raised.
            raise (exit_.__context__ or ValueError("the crypt4gh reader gave up")) from None


def _secret_of_length(secret: bytes | None, path: Path, what: str) -> bytes:
    if secret is None:
        raise KeyLoadError(f"{PRIVATE_KEY}: {path} is not a valid {what} (the crypt4gh reader returned nothing)")
    if len(secret) != KEY_LENGTH:
        raise KeyLoadError(f"{PRIVATE_KEY}: {path} holds a {len(secret)}-byte {what}, not a 32-byte X25519 key")
    return secret


def _wrong_passphrase(path: Path) -> KeyLoadError:
    return KeyLoadError(f"c4gh.passphrase: wrong passphrase for the private key {path} ({PRIVATE_KEY})")


def _unencrypted_warning(path: Path) -> str:
    return (
        f"{PRIVATE_KEY}: the private key {path} is not protected by a passphrase; "
        "anyone who can read the file can decrypt what is sent to this node"
    )


def read_crypt4gh_private_key(path: Path, label: str, passphrase: str) -> PrivateKey:
    name = "crypt4gh" if label == PYTHON_LABEL else "crypt4gh, Go label"
    invalid = f"{PRIVATE_KEY}: {path} is not a valid crypt4gh private key"
    try:
        stream = io.BytesIO(_quietly(lambda: load_from_pem(str(path))))
        if stream.read(len(c4gh.MAGIC_WORD)) != c4gh.MAGIC_WORD:
            raise KeyLoadError(f"{invalid} (it does not start with {c4gh.MAGIC_WORD.decode()})")
        kdf = c4gh.decode_string(stream)
    # from None, here and below: a reader's errors may hold bytes of the private key or its passphrase.
    except ValueError as error:
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    if kdf != b"none" and kdf not in KDFS:
        raise KeyLoadError(f"{invalid} (unknown kdf {kdf.decode(errors='replace')})")
    try:
        secret = _quietly(lambda: get_private_key(str(path), lambda: passphrase))
    except InvalidTag:
        raise _wrong_passphrase(path) from None
    except Exception as error:
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    secret = _secret_of_length(secret, path, "crypt4gh key")
    if kdf == b"none":
        return PrivateKey(secret, f"{name} (unencrypted)", _unencrypted_warning(path))
    return PrivateKey(secret, f"{name} ({kdf.decode()})")


def _openssh_key_type_and_cipher(path: Path) -> tuple[bytes, bytes]:
    """Read from the key's clear part which kind of key it holds and how it is encrypted."""
    stream = io.BytesIO(_quietly(lambda: load_from_pem(str(path))))
    if stream.read(len(ssh.MAGIC_WORD)) != ssh.MAGIC_WORD:
        raise ValueError(f"it does not start with {ssh.MAGIC_WORD[:-1].decode()}")
    cipher = ssh.decode_string(stream)
    ssh.decode_string(stream)  # kdf name
    ssh.decode_string(stream)  # kdf options
    stream.read(4)  # number of keys
    key_type = ssh.decode_string(io.BytesIO(ssh.decode_string(stream)))
    return key_type, cipher


def read_openssh_private_key(path: Path, passphrase: str) -> PrivateKey:
    invalid = f"{PRIVATE_KEY}: {path} is not a valid OpenSSH private key"
    try:
        key_type, cipher = _openssh_key_type_and_cipher(path)
    # from None, here and below: a reader's errors may hold bytes of the private key or its passphrase.
    except ValueError as error:
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    if key_type != b"ssh-ed25519":
        raise KeyLoadError(
            f"{PRIVATE_KEY}: {path} is an OpenSSH {key_type.decode(errors='replace')} key; "
            f"of OpenSSH keys only ed25519 ones can be used (accepted: {PRIVATE_FORMATS})"
        )
    try:
        secret = _quietly(lambda: get_private_key(str(path), lambda: passphrase))
    except ValueError as error:
        # OpenSSH's own test: the two check numbers at the start of the decrypted part differ.
        if not error.args and cipher != b"none":
            raise _wrong_passphrase(path) from None
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    except Exception as error:
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    secret = _secret_of_length(secret, path, "OpenSSH key")
    if cipher == b"none":
        return PrivateKey(secret, "OpenSSH ed25519 (unencrypted)", _unencrypted_warning(path))
    return PrivateKey(secret, "OpenSSH ed25519 (encrypted)")


def read_pkcs8_private_key(path: Path, lines: list[str], encrypted: bool, passphrase: str) -> PrivateKey:
    invalid = f"{PRIVATE_KEY}: {path} is not a valid PKCS#8 private key"
    try:
        key = load_pem_private_key("\n".join(lines).encode(), passphrase.encode() if encrypted else None)
    # from None: a reader's errors may hold bytes of the private key or its passphrase.
    except ValueError as error:
        if encrypted and "password" in str(error).lower():
            raise _wrong_passphrase(path) from None
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    except (TypeError, UnsupportedAlgorithm) as error:
        raise KeyLoadError(f"{invalid} ({_detail(error)})") from None
    if not isinstance(key, X25519PrivateKey):
        kind = type(key).__name__.removesuffix("PrivateKey").removeprefix("_")
        raise KeyLoadError(
            f"{PRIVATE_KEY}: {path} is a PKCS#8 {kind} key; of PKCS#8 keys only X25519 ones can be used "
            f"(accepted: {PRIVATE_FORMATS})"
        )
    secret = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    if encrypted:
        return PrivateKey(secret, "PKCS#8 X25519 (encrypted)")
    return PrivateKey(secret, "PKCS#8 X25519 (unencrypted)", _unencrypted_warning(path))


def read_crypt4gh_public_key(path: Path, key_format: str) -> PublicKey:
    """A crypt4gh PEM public key, or an OpenSSH ssh-ed25519 line converted to X25519 by crypt4gh."""
    try:
        key = _quietly(lambda: get_public_key(str(path)))
    except Exception as error:
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} is not a valid {key_format} key ({_detail(error)})") from error
    if key is None:
        raise KeyLoadError(
            f"{PUBLIC_KEY}: {path} is not a valid {key_format} key (the crypt4gh reader returned nothing)"
        )
    if len(key) != KEY_LENGTH:
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} holds {len(key)} bytes, not a 32-byte X25519 public key")
    return PublicKey(key, key_format)


def read_spki_public_key(path: Path, lines: list[str]) -> PublicKey:
    try:
        key = load_pem_public_key("\n".join(lines).encode())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyLoadError(
            f"{PUBLIC_KEY}: {path} is not a valid SubjectPublicKeyInfo key ({_detail(error)})"
        ) from error
    if not isinstance(key, X25519PublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").removeprefix("_")
        raise KeyLoadError(
            f"{PUBLIC_KEY}: {path} is a SubjectPublicKeyInfo {kind} key; only X25519 ones can be used "
            f"(accepted: {PUBLIC_FORMATS})"
        )
    return PublicKey(key.public_bytes(Encoding.Raw, PublicFormat.Raw), "SubjectPublicKeyInfo X25519")
