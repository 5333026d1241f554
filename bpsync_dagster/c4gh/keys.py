"""Load the node's private key and the receiver's public key, in every format the crypt4gh tools read.

The crypt4gh package reads its own format and OpenSSH ed25519 keys (converting them to X25519);
`cryptography` reads PKCS#8 and SubjectPublicKeyInfo. Here the file is classified by its PEM label
(or `ssh-` line), handed to the library that reads that format, and every failure of that library
(including crypt4gh's `sys.exit` on a wrong passphrase) becomes one `KeyLoadError` line naming the
config key, the file and, for a format not accepted, the formats that are.
"""

import contextlib
import hashlib
import io
import re
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

from bpsync_dagster.configuration import Crypt4ghSettings

PRIVATE_KEY = "c4gh.filePath"
PUBLIC_KEY = "c4gh.syncPubKeyPath"
PRIVATE_FORMATS = (
    "crypt4gh (CRYPT4GH PRIVATE KEY or CRYPT4GH ENCRYPTED PRIVATE KEY), OpenSSH ed25519, PKCS#8 X25519 PEM"
)
PUBLIC_FORMATS = "crypt4gh (CRYPT4GH PUBLIC KEY), an OpenSSH ssh-ed25519 line, SubjectPublicKeyInfo X25519 PEM"
PYTHON_LABEL = "CRYPT4GH PRIVATE KEY"
GO_LABEL = "CRYPT4GH ENCRYPTED PRIVATE KEY"
PKCS8_LABELS = {"PRIVATE KEY": False, "ENCRYPTED PRIVATE KEY": True}
KEY_LENGTH = 32

T = TypeVar("T")


class KeyLoadError(Exception):
    """A key that cannot be read, parsed or unlocked; the message names the config key and file."""


def fingerprint(public_key: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of the SHA-256 of its 32 bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


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


@dataclass(frozen=True)
class NodeKeys:
    """The node's secret key (it opens archived headers) and the receiver's public key."""

    node: PrivateKey
    receiver: PublicKey

    @property
    def secret_key(self) -> bytes:
        return self.node.secret_key

    @property
    def public_key(self) -> bytes:
        return self.node.public_key

    @property
    def receiver_public_key(self) -> bytes:
        return self.receiver.public_key

    @property
    def warnings(self) -> tuple[str, ...]:
        return (self.node.warning,) if self.node.warning else ()


def load_node_keys(settings: Crypt4ghSettings) -> NodeKeys:
    return NodeKeys(
        node=load_private_key(settings.private_key_path, settings.passphrase),
        receiver=load_public_key(settings.receiver_public_key_path),
    )


def _lines(path: Path, config_key: str, what: str, formats: str) -> list[str]:
    """The file's non-blank lines, stripped: CRLF, blank lines and trailing whitespace do not matter."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyLoadError(f"{config_key}: {what} {path} does not exist") from None
    except PermissionError:
        raise KeyLoadError(f"{config_key}: {what} {path} is not readable (permission denied)") from None
    except UnicodeDecodeError as error:
        raise KeyLoadError(
            f"{config_key}: {what} {path} cannot be read as text ({error}; accepted: {formats})"
        ) from None
    except OSError as error:
        raise KeyLoadError(f"{config_key}: {what} {path} cannot be read ({error})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise KeyLoadError(f"{config_key}: {what} {path} is empty")
    return lines


def _pem_label(lines: list[str], config_key: str, path: Path) -> str | None:
    """The label of a PEM block (`CRYPT4GH PRIVATE KEY`, …), or None for a file that is not PEM."""
    begin = re.fullmatch(r"-----BEGIN ([A-Z0-9 #]+)-----", lines[0])
    if begin is None:
        return None
    if lines[-1] != f"-----END {begin[1]}-----":
        raise KeyLoadError(f"{config_key}: {path} starts a PEM {begin[1]} but has no matching END line")
    return begin[1]


def _openssh_public_line_type(line: str) -> str | None:
    """The key type of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`), else None."""
    parts = line.split()
    return parts[0] if len(parts) >= 2 and parts[1].startswith("AAAA") else None


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
            raise (exit_.__context__ or ValueError("the crypt4gh reader gave up")) from None


def _secret_of_length(secret: bytes, path: Path, what: str) -> bytes:
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


def _crypt4gh_private_key(path: Path, label: str, passphrase: str) -> PrivateKey:
    name = "crypt4gh" if label == PYTHON_LABEL else "crypt4gh, Go label"
    invalid = f"{PRIVATE_KEY}: {path} is not a valid crypt4gh private key"
    try:
        stream = io.BytesIO(_quietly(lambda: load_from_pem(str(path))))
        if stream.read(len(c4gh.MAGIC_WORD)) != c4gh.MAGIC_WORD:
            raise KeyLoadError(f"{invalid} (it does not start with {c4gh.MAGIC_WORD.decode()})")
        kdf = c4gh.decode_string(stream)
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


def _openssh_private_key(path: Path, passphrase: str) -> PrivateKey:
    invalid = f"{PRIVATE_KEY}: {path} is not a valid OpenSSH private key"
    try:
        key_type, cipher = _openssh_key_type_and_cipher(path)
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


def _pkcs8_private_key(path: Path, lines: list[str], encrypted: bool, passphrase: str) -> PrivateKey:
    invalid = f"{PRIVATE_KEY}: {path} is not a valid PKCS#8 private key"
    try:
        key = load_pem_private_key("\n".join(lines).encode(), passphrase.encode() if encrypted else None)
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


def load_private_key(path: Path, passphrase: str) -> PrivateKey:
    """The X25519 secret key of `c4gh.filePath`, in any of `PRIVATE_FORMATS`."""
    lines = _lines(path, PRIVATE_KEY, "private key", PRIVATE_FORMATS)
    label = _pem_label(lines, PRIVATE_KEY, path)
    if label in (PYTHON_LABEL, GO_LABEL):
        return _crypt4gh_private_key(path, label, passphrase)
    if label == "OPENSSH PRIVATE KEY":
        return _openssh_private_key(path, passphrase)
    if label in PKCS8_LABELS:
        return _pkcs8_private_key(path, lines, PKCS8_LABELS[label], passphrase)
    if (label or "").endswith("PUBLIC KEY") or _openssh_public_line_type(lines[0]):
        raise KeyLoadError(f"{PRIVATE_KEY}: {path} holds a public key, not a private key (accepted: {PRIVATE_FORMATS})")
    what = f"a PEM {label}, a format not accepted" if label else "not a private key in a format accepted"
    raise KeyLoadError(f"{PRIVATE_KEY}: {path} is {what} (accepted: {PRIVATE_FORMATS})")


def _public_key_of_length(key: bytes, path: Path) -> bytes:
    if len(key) != KEY_LENGTH:
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} holds {len(key)} bytes, not a 32-byte X25519 public key")
    return key


def _crypt4gh_public_key(path: Path, what: str) -> bytes:
    try:
        return _quietly(lambda: get_public_key(str(path)))
    except Exception as error:
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} is not a valid {what} ({_detail(error)})") from None


def _spki_public_key(path: Path, lines: list[str]) -> bytes:
    try:
        key = load_pem_public_key("\n".join(lines).encode())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} is not a valid SubjectPublicKeyInfo key ({_detail(error)})") from None
    if not isinstance(key, X25519PublicKey):
        kind = type(key).__name__.removesuffix("PublicKey").removeprefix("_")
        raise KeyLoadError(
            f"{PUBLIC_KEY}: {path} is a SubjectPublicKeyInfo {kind} key; only X25519 ones can be used "
            f"(accepted: {PUBLIC_FORMATS})"
        )
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_public_key(path: Path) -> PublicKey:
    """The receiver's X25519 public key from `c4gh.syncPubKeyPath`, in any of `PUBLIC_FORMATS`."""
    lines = _lines(path, PUBLIC_KEY, "public key", PUBLIC_FORMATS)
    key_type = _openssh_public_line_type(lines[0])
    if key_type:
        if key_type != "ssh-ed25519":
            raise KeyLoadError(
                f"{PUBLIC_KEY}: {path} is an OpenSSH {key_type} key; of OpenSSH keys only ssh-ed25519 ones "
                f"can be used (accepted: {PUBLIC_FORMATS})"
            )
        key = _crypt4gh_public_key(path, "OpenSSH ssh-ed25519 key")
        return PublicKey(_public_key_of_length(key, path), "OpenSSH ssh-ed25519")
    label = _pem_label(lines, PUBLIC_KEY, path)
    if label == "CRYPT4GH PUBLIC KEY":
        key = _crypt4gh_public_key(path, "crypt4gh public key")
        return PublicKey(_public_key_of_length(key, path), "crypt4gh")
    if label == "PUBLIC KEY":
        return PublicKey(_spki_public_key(path, lines), "SubjectPublicKeyInfo X25519")
    if (label or "").endswith("PRIVATE KEY"):
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} holds a private key, not a public key (accepted: {PUBLIC_FORMATS})")
    what = f"a PEM {label}, a format not accepted" if label else "not a public key in a format accepted"
    raise KeyLoadError(f"{PUBLIC_KEY}: {path} is {what} (accepted: {PUBLIC_FORMATS})")
