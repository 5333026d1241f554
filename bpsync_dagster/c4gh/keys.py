"""Load the node's private key and the receiver's public key, in every format the crypt4gh tools read.

The file's PEM label (or its `ssh-ed25519 AAAA…` line) says which reader of `key_readers` gets it;
a format not accepted is refused with one line naming the config key, the file and the formats that are.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from bpsync_dagster.c4gh.key_readers import (
    PRIVATE_FORMATS,
    PRIVATE_KEY,
    PUBLIC_FORMATS,
    PUBLIC_KEY,
    PYTHON_LABEL,
    KeyLoadError,
    PrivateKey,
    PublicKey,
    read_crypt4gh_private_key,
    read_crypt4gh_public_key,
    read_openssh_private_key,
    read_pkcs8_private_key,
    read_spki_public_key,
)
from bpsync_dagster.configuration import Crypt4ghSettings

GO_LABEL = "CRYPT4GH ENCRYPTED PRIVATE KEY"
PKCS8_LABELS = {"PRIVATE KEY": False, "ENCRYPTED PRIVATE KEY": True}

__all__ = [
    "PRIVATE_FORMATS",
    "PUBLIC_FORMATS",
    "KeyLoadError",
    "NodeKeys",
    "PrivateKey",
    "PublicKey",
    "fingerprint",
    "load_node_keys",
    "load_private_key",
    "load_public_key",
]


def fingerprint(public_key: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of the SHA-256 of its 32 bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


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
    except FileNotFoundError as error:
        raise KeyLoadError(f"{config_key}: {what} {path} does not exist") from error
    except PermissionError as error:
        raise KeyLoadError(f"{config_key}: {what} {path} is not readable (permission denied)") from error
    except UnicodeDecodeError as error:
        # from None: the decode error holds the file's bytes, a private key's among them.
        raise KeyLoadError(
            f"{config_key}: {what} {path} cannot be read as text ({error}; accepted: {formats})"
        ) from None
    except OSError as error:
        raise KeyLoadError(f"{config_key}: {what} {path} cannot be read ({error})") from error
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


def load_private_key(path: Path, passphrase: str) -> PrivateKey:
    """The X25519 secret key of `c4gh.filePath`, in any of `PRIVATE_FORMATS`."""
    lines = _lines(path, PRIVATE_KEY, "private key", PRIVATE_FORMATS)
    label = _pem_label(lines, PRIVATE_KEY, path)
    if label in (PYTHON_LABEL, GO_LABEL):
        return read_crypt4gh_private_key(path, label, passphrase)
    if label == "OPENSSH PRIVATE KEY":
        return read_openssh_private_key(path, passphrase)
    if label in PKCS8_LABELS:
        return read_pkcs8_private_key(path, lines, PKCS8_LABELS[label], passphrase)
    if (label or "").endswith("PUBLIC KEY") or _openssh_public_line_type(lines[0]):
        raise KeyLoadError(f"{PRIVATE_KEY}: {path} holds a public key, not a private key (accepted: {PRIVATE_FORMATS})")
    what = f"a PEM {label}, a format not accepted" if label else "not a private key in a format accepted"
    raise KeyLoadError(f"{PRIVATE_KEY}: {path} is {what} (accepted: {PRIVATE_FORMATS})")


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
        return read_crypt4gh_public_key(path, "OpenSSH ssh-ed25519")
    label = _pem_label(lines, PUBLIC_KEY, path)
    if label == "CRYPT4GH PUBLIC KEY":
        return read_crypt4gh_public_key(path, "crypt4gh")
    if label == "PUBLIC KEY":
        return read_spki_public_key(path, lines)
    if (label or "").endswith("PRIVATE KEY"):
        raise KeyLoadError(f"{PUBLIC_KEY}: {path} holds a private key, not a public key (accepted: {PUBLIC_FORMATS})")
    what = f"a PEM {label}, a format not accepted" if label else "not a public key in a format accepted"
    raise KeyLoadError(f"{PUBLIC_KEY}: {path} is {what} (accepted: {PUBLIC_FORMATS})")
