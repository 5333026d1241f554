"""Key files made by the tools that make them on real nodes: `crypt4gh-keygen`, `ssh-keygen`, `openssl`."""

import os
import shutil
import subprocess
import sys
from base64 import b64encode
from pathlib import Path
from typing import Any
from unittest import mock

from crypt4gh.keys import c4gh
from crypt4gh.keys.kdf import derive_key, get_kdf
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

PYTHON_LABEL = "CRYPT4GH PRIVATE KEY"
GO_LABEL = "CRYPT4GH ENCRYPTED PRIVATE KEY"
# The DER encodings of an X25519 key up to its 32 raw bytes (RFC 8410).
PKCS8_X25519_PREFIX = bytes.fromhex("302e020100300506032b656e04220420")
SPKI_X25519_PREFIX = bytes.fromhex("302a300506032b656e032100")
_PASSPHRASE_VARIABLE = "BPSYNC_TEST_KEY_PASSPHRASE"


def tool(name: str) -> str:
    """A command: the one installed beside this Python (the venv's crypt4gh tools), or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (crypt4gh-keygen comes with the crypt4gh package)")
    return found


def _run(arguments: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(arguments, capture_output=True, check=False, **options)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:2])} failed: {result.stderr.decode(errors='replace')}")
    return result


def crypt4gh_keygen(secret_path: Path, public_path: Path, passphrase: str | None) -> None:
    """`crypt4gh-keygen`; without a passphrase, `--nocrypt`. It asks for the passphrase twice with
    `getpass`, which reads standard input when the process has no terminal (a new session)."""
    arguments = [tool("crypt4gh-keygen"), "--sk", str(secret_path), "--pk", str(public_path), "-f"]
    if passphrase is None:
        _run([*arguments, "--nocrypt"], stdin=subprocess.DEVNULL, start_new_session=True)
    else:
        _run(arguments, input=f"{passphrase}\n{passphrase}\n".encode(), start_new_session=True)


def relabel_for_go(source: Path, target: Path) -> None:
    """The key as the Go tools (sda-cli, the SDA services) write it: the same body under their label."""
    target.write_text(source.read_text().replace(PYTHON_LABEL, GO_LABEL))


def write_crypt4gh_private_key(path: Path, secret_key: bytes, passphrase: str, kdf: str) -> None:
    """A crypt4gh private key protected with bcrypt or pbkdf2_hmac_sha256, which `crypt4gh-keygen`
    (always scrypt) cannot be told to use.

    The package's writer, `c4gh.encode_private_key`, picks scrypt, or bcrypt where scrypt is missing:
    bcrypt keys come from it with scrypt switched off. Nothing in the package writes
    pbkdf2_hmac_sha256 keys (it only reads them), so those are laid out as that writer lays out the
    others, with the package's own KDF table and key derivation.
    """
    if kdf == "bcrypt":
        with mock.patch.object(c4gh, "scrypt_supported", False):
            body = c4gh.encode_private_key(secret_key, passphrase.encode(), None)
    else:
        salt_size, rounds = get_kdf(kdf.encode())
        salt, nonce = os.urandom(salt_size), os.urandom(12)
        sealed = ChaCha20Poly1305(derive_key(kdf.encode(), passphrase.encode(), salt, rounds)).encrypt(
            nonce, secret_key, None
        )
        body = (
            c4gh.MAGIC_WORD
            + c4gh.encode_string(kdf.encode())
            + c4gh.encode_string(rounds.to_bytes(4, "big") + salt)
            + c4gh.encode_string(b"chacha20_poly1305")
            + c4gh.encode_string(nonce + sealed)
        )
    path.write_bytes(
        b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (PYTHON_LABEL.encode(), b64encode(body), PYTHON_LABEL.encode())
    )


def ssh_keygen(path: Path, passphrase: str | None, key_type: str = "ed25519") -> None:
    """`ssh-keygen -t <key_type>`: the private key at `path`, the public key line at `path`.pub."""
    path.unlink(missing_ok=True)
    _run([tool("ssh-keygen"), "-q", "-t", key_type, "-N", passphrase or "", "-C", path.name, "-f", str(path)])


def _passphrase_environment(passphrase: str | None) -> dict[str, str]:
    return {**os.environ, _PASSPHRASE_VARIABLE: passphrase or ""}


def openssl_genpkey(path: Path, public_path: Path, passphrase: str | None, algorithm: str = "X25519") -> None:
    """`openssl genpkey` (PKCS#8, encrypted with AES-256-CBC when there is a passphrase) and
    `openssl pkey -pubout` (SubjectPublicKeyInfo)."""
    environment = _passphrase_environment(passphrase)
    encryption = ["-aes-256-cbc", "-pass", f"env:{_PASSPHRASE_VARIABLE}"] if passphrase else []
    _run([tool("openssl"), "genpkey", "-algorithm", algorithm, *encryption, "-out", str(path)], env=environment)
    _run(
        [tool("openssl"), "pkey", "-in", str(path), "-passin", f"env:{_PASSPHRASE_VARIABLE}", "-pubout"]
        + ["-out", str(public_path)],
        env=environment,
    )


def openssl_raw_private_key(path: Path, passphrase: str | None) -> bytes:
    """The 32 raw bytes of a PKCS#8 X25519 key, as `openssl pkey` decodes it."""
    der = _run(
        [tool("openssl"), "pkey", "-in", str(path), "-passin", f"env:{_PASSPHRASE_VARIABLE}", "-outform", "DER"],
        env=_passphrase_environment(passphrase),
    ).stdout
    if not der.startswith(PKCS8_X25519_PREFIX) or len(der) != len(PKCS8_X25519_PREFIX) + 32:
        raise RuntimeError(f"{path} is not a PKCS#8 X25519 key")
    return der[len(PKCS8_X25519_PREFIX) :]


def openssl_raw_public_key(path: Path) -> bytes:
    """The 32 raw bytes of a SubjectPublicKeyInfo X25519 key, as `openssl pkey` decodes it."""
    der = _run([tool("openssl"), "pkey", "-pubin", "-in", str(path), "-outform", "DER"]).stdout
    if not der.startswith(SPKI_X25519_PREFIX) or len(der) != len(SPKI_X25519_PREFIX) + 32:
        raise RuntimeError(f"{path} is not a SubjectPublicKeyInfo X25519 key")
    return der[len(SPKI_X25519_PREFIX) :]


def crypt4gh_decrypt(data: bytes, secret_key_path: Path, passphrase: str | None) -> bytes:
    """`crypt4gh decrypt --sk <file>`: the plaintext of a whole crypt4gh file."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("C4GH_")}
    if passphrase:
        environment["C4GH_PASSPHRASE"] = passphrase
    arguments = [tool("crypt4gh"), "decrypt", "--sk", str(secret_key_path)]
    return _run(arguments, input=data, env=environment, start_new_session=True).stdout
