"""A key pair in each format a node's private key or a receiver's public key comes in, made by the
tool that makes that format, with its raw X25519 keys as the crypt4gh package (or, for PKCS#8 and
SubjectPublicKeyInfo, which it does not read, `openssl`) reads them."""

from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crypt4gh import sodium
from crypt4gh.keys import c4gh, get_private_key, get_public_key

from bpsync_dagster_tests.support import key_tools
from bpsync_dagster_tests.support.crypt4gh_files import KeyPair

Maker = Callable[[Path, str, str], KeyPair]


def _checked(private_key_path: Path, public_key_path: Path, passphrase: str, secret: bytes, public: bytes) -> KeyPair:
    if sodium.derive_pk(secret) != public:
        raise RuntimeError(f"{public_key_path} is not the public key of {private_key_path}")
    return KeyPair(private_key_path, public_key_path, passphrase, secret, public)


def _read_back(private_key_path: Path, public_key_path: Path, passphrase: str) -> KeyPair:
    secret = get_private_key(str(private_key_path), lambda: passphrase)
    return _checked(private_key_path, public_key_path, passphrase, secret, get_public_key(str(public_key_path)))


def crypt4gh_keygen(directory: Path, stem: str, passphrase: str) -> KeyPair:
    secret_path, public_path = directory / f"{stem}.sec.pem", directory / f"{stem}.pub.pem"
    key_tools.crypt4gh_keygen(secret_path, public_path, passphrase or None)
    return _read_back(secret_path, public_path, passphrase)


def crypt4gh_unencrypted(directory: Path, stem: str, passphrase: str) -> KeyPair:
    """`crypt4gh-keygen --nocrypt`: the passphrase is not used."""
    return crypt4gh_keygen(directory, stem, "")


def crypt4gh_go_label(directory: Path, stem: str, passphrase: str) -> KeyPair:
    made = crypt4gh_keygen(directory, f"{stem}.python", passphrase)
    relabelled = directory / f"{stem}.sec.pem"
    key_tools.relabel_for_go(made.private_key_path, relabelled)
    return _read_back(relabelled, made.public_key_path, passphrase)


def _crypt4gh_with_kdf(kdf: str) -> Maker:
    def make(directory: Path, stem: str, passphrase: str) -> KeyPair:
        made = crypt4gh_keygen(directory, f"{stem}.scrypt", passphrase)
        rewritten = directory / f"{stem}.sec.pem"
        key_tools.write_crypt4gh_private_key(rewritten, made.secret_key, passphrase, kdf)
        return _read_back(rewritten, made.public_key_path, passphrase)

    return make


def ssh_keygen(directory: Path, stem: str, passphrase: str) -> KeyPair:
    path = directory / stem
    key_tools.ssh_keygen(path, passphrase or None)
    return _read_back(path, path.with_name(f"{stem}.pub"), passphrase)


def ssh_keygen_unencrypted(directory: Path, stem: str, passphrase: str) -> KeyPair:
    """`ssh-keygen -N ""`: the passphrase is not used."""
    return ssh_keygen(directory, stem, "")


def openssl_x25519(directory: Path, stem: str, passphrase: str) -> KeyPair:
    secret_path, public_path = directory / f"{stem}.key.pem", directory / f"{stem}.pub.pem"
    key_tools.openssl_genpkey(secret_path, public_path, passphrase or None)
    secret = key_tools.openssl_raw_private_key(secret_path, passphrase or None)
    return _checked(secret_path, public_path, passphrase, secret, key_tools.openssl_raw_public_key(public_path))


def openssl_x25519_unencrypted(directory: Path, stem: str, passphrase: str) -> KeyPair:
    """`openssl genpkey` without a cipher: the passphrase is not used."""
    return openssl_x25519(directory, stem, "")


@dataclass(frozen=True)
class KeyFormat:
    """How a key file is made, and what `bpsync_dagster.c4gh.keys` reports having read it as."""

    name: str
    read_as: str
    make: Maker

    @property
    def encrypted(self) -> bool:
        return "unencrypted" not in self.read_as


PRIVATE_KEY_FORMATS = [
    KeyFormat("crypt4gh-keygen", "crypt4gh (scrypt)", crypt4gh_keygen),
    KeyFormat("crypt4gh-go-label", "crypt4gh, Go label (scrypt)", crypt4gh_go_label),
    KeyFormat("crypt4gh-bcrypt", "crypt4gh (bcrypt)", _crypt4gh_with_kdf("bcrypt")),
    KeyFormat("crypt4gh-pbkdf2", "crypt4gh (pbkdf2_hmac_sha256)", _crypt4gh_with_kdf("pbkdf2_hmac_sha256")),
    KeyFormat("crypt4gh-nocrypt", "crypt4gh (unencrypted)", crypt4gh_unencrypted),
    KeyFormat("ssh-ed25519", "OpenSSH ed25519 (encrypted)", ssh_keygen),
    KeyFormat("ssh-ed25519-no-passphrase", "OpenSSH ed25519 (unencrypted)", ssh_keygen_unencrypted),
    KeyFormat("openssl-x25519-aes", "PKCS#8 X25519 (encrypted)", openssl_x25519),
    KeyFormat("openssl-x25519", "PKCS#8 X25519 (unencrypted)", openssl_x25519_unencrypted),
]
PUBLIC_KEY_FORMATS = [
    KeyFormat("crypt4gh", "crypt4gh", crypt4gh_keygen),
    KeyFormat("ssh-ed25519", "OpenSSH ssh-ed25519", ssh_keygen),
    KeyFormat("spki-x25519", "SubjectPublicKeyInfo X25519", openssl_x25519),
]


def crypt4gh_cli_key(pair: KeyPair) -> Path:
    """A private key file the `crypt4gh` command reads: the pair's own, except for PKCS#8, which it
    does not read; that key is written beside it in crypt4gh format by the package's writer."""
    label = pair.private_key_path.read_text().split("\n", 1)[0]
    if "CRYPT4GH" in label or "OPENSSH" in label:
        return pair.private_key_path
    body = c4gh.encode_private_key(pair.secret_key, pair.passphrase.encode(), None)
    path = pair.private_key_path.with_name(f"{pair.private_key_path.name}.crypt4gh")
    path.write_bytes(
        b"-----BEGIN CRYPT4GH PRIVATE KEY-----\n%s\n-----END CRYPT4GH PRIVATE KEY-----\n" % b64encode(body)
    )
    return path
