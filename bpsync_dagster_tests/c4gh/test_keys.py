"""Loading the node's private key and the receiver's public key in every format the tools write."""

import hashlib
import os
from base64 import b64encode
from pathlib import Path

import pytest
from crypt4gh.keys import c4gh

from bpsync_dagster.c4gh import KeyLoadError, fingerprint, key_readers, load_node_keys
from bpsync_dagster.c4gh.keys import PRIVATE_FORMATS, PUBLIC_FORMATS, load_private_key, load_public_key
from bpsync_dagster.configuration import Crypt4ghSettings
from bpsync_dagster_tests.support import key_tools
from bpsync_dagster_tests.support.crypt4gh_files import KeyPair
from bpsync_dagster_tests.support.key_formats import PRIVATE_KEY_FORMATS, PUBLIC_KEY_FORMATS, KeyFormat

KeyPairs = tuple[KeyPair, KeyPair]
PASSPHRASE = "key-format-passphrase-3a9"
ENCRYPTED = [key_format for key_format in PRIVATE_KEY_FORMATS if key_format.encrypted]


def by_name(formats: list[KeyFormat]) -> dict[str, KeyFormat]:
    return {key_format.name: key_format for key_format in formats}


@pytest.fixture(scope="module")
def private_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("private-keys")
    return {
        key_format.name: key_format.make(directory, key_format.name, PASSPHRASE) for key_format in PRIVATE_KEY_FORMATS
    }


@pytest.fixture(scope="module")
def public_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("public-keys")
    return {
        key_format.name: key_format.make(directory, key_format.name, PASSPHRASE) for key_format in PUBLIC_KEY_FORMATS
    }


def pem(label: str, payload: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), b64encode(payload), label.encode())


def private_key_pem(kdf: bytes, kdf_options: bytes, cipher: bytes, private_data: bytes) -> bytes:
    encode = c4gh.encode_string
    body = c4gh.MAGIC_WORD + encode(kdf) + encode(kdf_options) + encode(cipher) + encode(private_data)
    return pem("CRYPT4GH PRIVATE KEY", body)


def assert_one_line_naming(error: KeyLoadError, config_key: str, path: Path) -> str:
    message = str(error)
    assert message.startswith(f"{config_key}: "), message
    assert str(path) in message and "\n" not in message, message
    return message


@pytest.mark.parametrize("key_format", PRIVATE_KEY_FORMATS, ids=lambda key_format: key_format.name)
def test_each_private_key_format_loads_the_key_its_tool_made(
    private_keys: dict[str, KeyPair], key_format: KeyFormat, capfd: pytest.CaptureFixture[str]
) -> None:
    pair = private_keys[key_format.name]

    loaded = load_private_key(pair.private_key_path, PASSPHRASE)

    assert loaded.secret_key == pair.secret_key
    assert loaded.public_key == pair.public_key
    assert loaded.format == key_format.read_as
    if key_format.encrypted:
        assert loaded.warning is None
    else:
        assert loaded.warning is not None and str(pair.private_key_path) in loaded.warning
        assert loaded.warning.startswith("c4gh.filePath: ") and "not protected by a passphrase" in loaded.warning
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("key_format", PUBLIC_KEY_FORMATS, ids=lambda key_format: key_format.name)
def test_each_public_key_format_loads_the_key_its_tool_made(
    public_keys: dict[str, KeyPair], key_format: KeyFormat
) -> None:
    pair = public_keys[key_format.name]

    loaded = load_public_key(pair.public_key_path)

    assert loaded.public_key == pair.public_key
    assert loaded.format == key_format.read_as


@pytest.mark.parametrize("key_format", ENCRYPTED, ids=lambda key_format: key_format.name)
def test_a_wrong_passphrase_is_one_clear_line_for_each_format(
    private_keys: dict[str, KeyPair], key_format: KeyFormat, capfd: pytest.CaptureFixture[str]
) -> None:
    path = private_keys[key_format.name].private_key_path

    with pytest.raises(KeyLoadError) as caught:
        load_private_key(path, "not-the-passphrase")

    assert str(caught.value) == f"c4gh.passphrase: wrong passphrase for the private key {path} (c4gh.filePath)"
    assert capfd.readouterr() == ("", "")


LAYOUTS = {
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "blank-lines-around": lambda text: "\n\n  \n" + text + "\n\n\t\n",
    "trailing-whitespace": lambda text: "".join(f"{line} \t\n" for line in text.splitlines()),
    "all-three": lambda text: "\r\n\r\n" + "".join(f"{line}  \r\n" for line in text.splitlines()) + "\r\n",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_line_endings_blank_lines_and_trailing_whitespace_do_not_matter(
    tmp_path: Path, private_keys: dict[str, KeyPair], public_keys: dict[str, KeyPair], layout: str
) -> None:
    for name, pair in private_keys.items():
        path = tmp_path / f"{name}.private"
        path.write_text(LAYOUTS[layout](pair.private_key_path.read_text()), newline="")
        loaded = load_private_key(path, PASSPHRASE)
        assert loaded.secret_key == pair.secret_key, name
        assert loaded.format == by_name(PRIVATE_KEY_FORMATS)[name].read_as
    for name, pair in public_keys.items():
        path = tmp_path / f"{name}.public"
        path.write_text(LAYOUTS[layout](pair.public_key_path.read_text()), newline="")
        assert load_public_key(path).public_key == pair.public_key, name


def test_node_keys_load_from_settings(private_keys: dict[str, KeyPair], public_keys: dict[str, KeyPair]) -> None:
    node, receiver = private_keys["ssh-ed25519-no-passphrase"], public_keys["spki-x25519"]
    settings = Crypt4ghSettings(node.private_key_path, receiver.public_key_path, PASSPHRASE)

    keys = load_node_keys(settings)

    assert keys.secret_key == node.secret_key
    assert keys.public_key == node.public_key
    assert keys.receiver_public_key == receiver.public_key
    assert (keys.node.format, keys.receiver.format) == ("OpenSSH ed25519 (unencrypted)", "SubjectPublicKeyInfo X25519")
    assert len(keys.warnings) == 1 and str(node.private_key_path) in keys.warnings[0]
    assert node.secret_key.hex() not in repr(keys) and repr(node.secret_key) not in repr(keys)


def test_the_fingerprint_is_the_start_of_the_public_key_sha256(key_pairs: KeyPairs) -> None:
    assert fingerprint(key_pairs[1].public_key) == hashlib.sha256(key_pairs[1].public_key).hexdigest()[:16]


def test_missing_files_name_their_config_key(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match=r"^c4gh\.filePath: .* does not exist"):
        load_private_key(tmp_path / "absent.sec.pem", PASSPHRASE)
    with pytest.raises(KeyLoadError, match=r"^c4gh\.syncPubKeyPath: .* does not exist"):
        load_public_key(tmp_path / "absent.pub.pem")


@pytest.mark.parametrize(("which", "key"), [("private", "c4gh.filePath"), ("public", "c4gh.syncPubKeyPath")])
def test_unreadable_file_names_its_config_key(tmp_path: Path, key_pairs: KeyPairs, which: str, key: str) -> None:
    node, receiver = key_pairs
    source = node.private_key_path if which == "private" else receiver.public_key_path
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes())
    path.chmod(0o000)
    if os.access(path, os.R_OK):
        pytest.skip("this user can read a file with mode 000 (root)")

    with pytest.raises(KeyLoadError, match=rf"^{key}: .* is not readable"):
        if which == "private":
            load_private_key(path, node.passphrase)
        else:
            load_public_key(path)


@pytest.fixture(scope="module")
def wrong_type_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys the tools make that crypt4gh cannot use: RSA OpenSSH keys and ed25519 PKCS#8 / SPKI."""
    directory = tmp_path_factory.mktemp("wrong-type-keys")
    key_tools.ssh_keygen(directory / "id_rsa", None, key_type="rsa")
    key_tools.ssh_keygen(directory / "id_ecdsa", None, key_type="ecdsa")
    key_tools.openssl_genpkey(directory / "ed25519.key.pem", directory / "ed25519.pub.pem", None, "ED25519")
    key_tools.openssl_genpkey(directory / "rsa.key.pem", directory / "rsa.pub.pem", None, "RSA")
    return {path.name: path for path in directory.iterdir()}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("id_rsa", "is an OpenSSH ssh-rsa key"),
        ("id_ecdsa", "is an OpenSSH ecdsa-sha2-nistp256 key"),
        ("ed25519.key.pem", "is a PKCS#8 Ed25519 key"),
        ("rsa.key.pem", "is a PKCS#8 RSA key"),
        ("id_rsa.pub", "holds a public key"),
        ("rsa.pub.pem", "holds a public key"),
    ],
)
def test_private_keys_of_the_wrong_type_are_refused_naming_the_formats_accepted(
    wrong_type_keys: dict[str, Path], name: str, says: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = wrong_type_keys[name]

    with pytest.raises(KeyLoadError) as caught:
        load_private_key(path, PASSPHRASE)

    message = assert_one_line_naming(caught.value, "c4gh.filePath", path)
    assert says in message and PRIVATE_FORMATS in message
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("id_rsa.pub", "is an OpenSSH ssh-rsa key"),
        ("id_ecdsa.pub", "is an OpenSSH ecdsa-sha2-nistp256 key"),
        ("ed25519.pub.pem", "is a SubjectPublicKeyInfo Ed25519 key"),
        ("rsa.pub.pem", "is a SubjectPublicKeyInfo RSA key"),
        ("ed25519.key.pem", "holds a private key"),
        ("id_rsa", "holds a private key"),
    ],
)
def test_public_keys_of_the_wrong_type_are_refused_naming_the_formats_accepted(
    wrong_type_keys: dict[str, Path], name: str, says: str
) -> None:
    path = wrong_type_keys[name]

    with pytest.raises(KeyLoadError) as caught:
        load_public_key(path)

    message = assert_one_line_naming(caught.value, "c4gh.syncPubKeyPath", path)
    assert says in message and PUBLIC_FORMATS in message


GARBAGE = {
    "text": b"this is not a key at all\n",
    "empty": b"",
    "blank": b"\n \r\n\t\n",
    "binary": os.urandom(64) + b"\xff\xfe",
    "pkcs1-label": pem("RSA PRIVATE KEY", os.urandom(64)),
    "certificate": pem("CERTIFICATE", os.urandom(64)),
}


@pytest.mark.parametrize("content", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("which", ["private", "public"])
def test_garbage_is_one_line_naming_the_config_key_and_file(
    tmp_path: Path, content: bytes, which: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError) as caught:
        if which == "private":
            load_private_key(path, PASSPHRASE)
        else:
            load_public_key(path)

    config_key, formats = (
        ("c4gh.filePath", PRIVATE_FORMATS) if which == "private" else ("c4gh.syncPubKeyPath", PUBLIC_FORMATS)
    )
    message = assert_one_line_naming(caught.value, config_key, path)
    assert formats in message or "is empty" in message or "cannot be read" in message
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (pem("CRYPT4GH PUBLIC KEY", os.urandom(31)), "holds 31 bytes"),
        (pem("CRYPT4GH PUBLIC KEY", os.urandom(33)), "holds 33 bytes"),
        (b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n!!!not base64!!!\n-----END CRYPT4GH PUBLIC KEY-----\n", "not a valid"),
        (b"-----BEGIN CRYPT4GH PUBLIC KEY-----\n" + b64encode(os.urandom(32)) + b"\n", "no matching END line"),
        (pem("PUBLIC KEY", os.urandom(44)), "not a valid SubjectPublicKeyInfo key"),
        (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== broken\n", "not a valid OpenSSH ssh-ed25519 key"),
    ],
    ids=["31-bytes", "33-bytes", "bad-base64", "no-end-line", "bad-spki", "short-ssh-line"],
)
def test_damaged_public_keys_say_what_is_wrong(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "receiver.pub.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError) as caught:
        load_public_key(path)

    assert says in assert_one_line_naming(caught.value, "c4gh.syncPubKeyPath", path)


VALID_KDF_OPTIONS = (0).to_bytes(4, "big") + b"s" * 16


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (pem("CRYPT4GH PRIVATE KEY", b"c4gh-v2" + os.urandom(40)), "does not start with c4gh-v1"),
        (pem("CRYPT4GH ENCRYPTED PRIVATE KEY", c4gh.MAGIC_WORD + c4gh.encode_string(b"argon2")), "unknown kdf argon2"),
        (private_key_pem(b"scrypt", VALID_KDF_OPTIONS, b"aes256_gcm", os.urandom(60)), "Unsupported Cipher"),
        (pem("CRYPT4GH PRIVATE KEY", c4gh.MAGIC_WORD + c4gh.encode_string(b"scrypt") + b"\x00\x40ab"), "not a valid"),
        (private_key_pem(b"scrypt", VALID_KDF_OPTIONS, b"chacha20_poly1305", b"short"), "not a valid"),
        (private_key_pem(b"bcrypt", VALID_KDF_OPTIONS, b"chacha20_poly1305", os.urandom(60)), "not a valid"),
        (
            pem(
                "CRYPT4GH PRIVATE KEY",
                c4gh.MAGIC_WORD + c4gh.encode_string(b"none") * 2 + c4gh.encode_string(b"x" * 31),
            ),
            "holds a 31-byte crypt4gh key",
        ),
        (pem("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00" + os.urandom(20)), "not a valid OpenSSH private key"),
        (pem("ENCRYPTED PRIVATE KEY", os.urandom(80)), "not a valid PKCS#8 private key"),
        (pem("PRIVATE KEY", os.urandom(48)), "not a valid PKCS#8 private key"),
    ],
    ids=[
        "bad-magic",
        "unknown-kdf",
        "other-cipher",
        "truncated-options",
        "private-data-shorter-than-nonce",
        "bcrypt-zero-rounds",
        "unencrypted-31-bytes",
        "openssh-truncated",
        "pkcs8-encrypted-garbage",
        "pkcs8-garbage",
    ],
)
def test_damaged_private_keys_say_what_is_wrong(
    tmp_path: Path, content: bytes, says: str, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.sec.pem"
    path.write_bytes(content)

    with pytest.raises(KeyLoadError) as caught:
        load_private_key(path, PASSPHRASE)

    assert says in assert_one_line_naming(caught.value, "c4gh.filePath", path)
    assert capfd.readouterr() == ("", "")


def test_a_crypt4gh_reader_returning_nothing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, key_pairs: KeyPairs
) -> None:
    """crypt4gh's helpers return None on some failures; none of its key readers does in 1.8.6, so
    the readers are replaced here to show such an answer is named, not passed on."""
    node, receiver = key_pairs
    monkeypatch.setattr(key_readers, "get_private_key", lambda path, callback: None)
    monkeypatch.setattr(key_readers, "get_public_key", lambda path: None)

    with pytest.raises(KeyLoadError, match=r"^c4gh\.filePath: .*\(the crypt4gh reader returned nothing\)"):
        load_private_key(node.private_key_path, node.passphrase)
    with pytest.raises(KeyLoadError, match=r"^c4gh\.syncPubKeyPath: .*\(the crypt4gh reader returned nothing\)"):
        load_public_key(receiver.public_key_path)
