"""Bad configuration not covered by `test_loader.py` and `c4gh/test_keys.py`: the tested list of
required keys is the loader's whole list, every storage entry key it requires is named, keys that
cannot be read (even by root), http endpoints and bad chunk sizes are one-line errors naming the key."""

import os
from pathlib import Path

import pytest
import yaml

from bpsync_dagster.c4gh import KeyLoadError
from bpsync_dagster.c4gh.keys import load_private_key, load_public_key
from bpsync_dagster.configuration import ConfigError, load_settings
from bpsync_dagster.configuration.loader import env_name
from bpsync_dagster_tests.configuration.test_loader import REQUIRED_KEYS, config_error, s3_entry, with_storage
from bpsync_dagster_tests.support.crypt4gh_files import KeyPair
from bpsync_dagster_tests.support.environment import SECRETS, Node

MINIMAL_STORAGE = {"storage": {"archive": {"posix": [{"path": "/archive"}]}, "sync": {"posix": [{"path": "/sync"}]}}}
NUMERIC_KEYS = ("broker.port",)


def required_keys_the_loader_asks_for(tmp_path: Path) -> list[str]:
    """Start from storage alone (YAML only) and plain database TLS, and supply the keys the loader
    says are required (all of them in one run) until it loads: the loader's own list."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_STORAGE))
    environ = {"CONFIG_FILE": str(path), "DB_SSLMODE": "disable"}
    asked: list[str] = []
    for _ in range(50):
        try:
            load_settings(environ)
        except ConfigError as error:
            for problem in error.problems:
                assert problem.endswith(" is required") and f"\n  {problem}" in str(error), str(error)
                key = problem.split(" ")[0]
                asked.append(key)
                environ[env_name(key)] = "5672" if key in NUMERIC_KEYS else "/from/env"
        else:
            return asked
    raise AssertionError(f"the loader kept asking for keys: {asked}")


def test_the_tested_required_keys_are_every_key_the_loader_requires(tmp_path: Path) -> None:
    assert sorted(required_keys_the_loader_asks_for(tmp_path)) == sorted(REQUIRED_KEYS)


@pytest.mark.parametrize(("key", "env"), REQUIRED_KEYS.items())
def test_a_required_key_missing_from_both_yaml_and_environment_names_its_env_form(
    tmp_path: Path, key: str, env: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_STORAGE))
    environ = {"CONFIG_FILE": str(path), "DB_SSLMODE": "disable"}
    environ.update({other_env: "5672" for other_key, other_env in REQUIRED_KEYS.items() if other_key != key})

    with pytest.raises(ConfigError) as caught:
        load_settings({**environ, env: ""})

    message = str(caught.value)
    assert message.startswith(f"config: {key} (env {env}") and message.endswith(") is required")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("side", "backend", "missing"),
    [
        ("archive", "posix", "path"),
        ("sync", "posix", "path"),
        ("archive", "s3", "endpoint"),
        ("archive", "s3", "access_key"),
        ("sync", "s3", "endpoint"),
        ("sync", "s3", "access_key"),
        ("sync", "s3", "secret_key"),
        ("sync", "s3", "bucket_prefix"),
    ],
)
def test_a_storage_entry_without_a_required_key_names_it(tmp_path: Path, side: str, backend: str, missing: str) -> None:
    entry = s3_entry(**{missing: None}) if backend == "s3" else {}
    good = {"posix": [{"path": f"/{side}-good"}]}
    storage = {side: {backend: [entry]}, ("sync" if side == "archive" else "archive"): good}

    message = config_error(tmp_path, with_storage(storage["archive"], storage["sync"]))

    assert message == f"config: storage.{side}.{backend}[0].{missing} is required"


@pytest.mark.parametrize("side", ["archive", "sync"])
@pytest.mark.parametrize("disable_https", [None, False, "no"])
def test_an_http_endpoint_without_disable_https_is_refused(tmp_path: Path, side: str, disable_https: object) -> None:
    entry = s3_entry(endpoint="http://s3.example.org:9000", disable_https=disable_https)
    good = {"posix": [{"path": "/good"}]}
    tree = with_storage({"s3": [entry]}, good) if side == "archive" else with_storage(good, {"s3": [entry]})

    message = config_error(tmp_path, tree)

    where = f"storage.{side}.s3[0]"
    assert message == f"config: {where}.endpoint is http: but {where}.disable_https is not true"


@pytest.mark.parametrize(
    ("chunk_size", "cause"),
    [
        (0, "must be between 5MB and 1GB, not 0 bytes"),
        (-5, "must not be negative"),
        ("5MB ", None),
        ("50XB", "must be a data size such as 50MB, not '50XB'"),
        ("-50MB", "must be a data size such as 50MB, not '-50MB'"),
        (True, "must be a data size such as 50MB, not True"),
        ([50], "must be a data size such as 50MB, not [50]"),
        ("2TB", f"must be between 5MB and 1GB, not {2 * 1024**4} bytes"),
    ],
)
def test_a_bad_chunk_size_names_the_entry(tmp_path: Path, chunk_size: object, cause: str | None) -> None:
    tree = with_storage({"posix": [{"path": "/archive"}]}, {"s3": [s3_entry(chunk_size=chunk_size)]})
    if cause is None:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(tree))
        assert load_settings({"CONFIG_FILE": str(path)}).sync.s3[0].chunk_size == 5 * 1024**2
        return

    assert config_error(tmp_path, tree) == f"config: storage.sync.s3[0].chunk_size {cause}"


@pytest.mark.parametrize("which", ["private", "public"])
@pytest.mark.parametrize("kind", ["directory", "dangling-symlink", "not-utf8"])
def test_a_key_file_that_cannot_be_read_names_its_config_key(
    tmp_path: Path, key_pairs: tuple[KeyPair, KeyPair], which: str, kind: str
) -> None:
    """As root a mode-000 file is readable (see `c4gh/test_keys.py`), so these are made unreadable
    in ways that hold for every user."""
    path = tmp_path / f"{which}.pem"
    if kind == "directory":
        path.mkdir()
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "absent")
    else:
        path.write_bytes(b"\xff\xfe\x00key")
    key = "c4gh.filePath" if which == "private" else "c4gh.syncPubKeyPath"
    expected = {"directory": "cannot be read", "dangling-symlink": "does not exist", "not-utf8": "cannot be read"}

    with pytest.raises(KeyLoadError) as caught:
        if which == "private":
            load_private_key(path, key_pairs[0].passphrase)
        else:
            load_public_key(path)

    message = str(caught.value)
    assert message.startswith(f"{key}: ") and str(path) in message and expected[kind] in message
    assert "\n" not in message


@pytest.mark.skipif(os.geteuid() != 0, reason="c4gh/test_keys.py tests a mode-000 key file for this user")
def test_as_root_a_mode_000_key_is_still_read(tmp_path: Path, key_pairs: tuple[KeyPair, KeyPair]) -> None:
    """Why the tests above exist: the permission case of `test_keys.py` is skipped under root."""
    path = tmp_path / "node.sec.pem"
    path.write_bytes(key_pairs[0].private_key_path.read_bytes())
    path.chmod(0o000)

    assert load_private_key(path, key_pairs[0].passphrase).secret_key == key_pairs[0].secret_key


def test_bpsync_names_an_unreadable_private_key_in_one_line(make_node, tmp_path: Path) -> None:
    node: Node = make_node("posix", "posix")
    unreadable = tmp_path / "node-key-is-a-directory"
    unreadable.mkdir()
    node.extra_env = {"C4GH_FILEPATH": str(unreadable)}

    result = node.bpsync("sync", node.dataset_id("unreadable-key"))

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"bpsync: c4gh.filePath: private key {unreadable} cannot be read (")
    assert result.stdout == ""
    for secret in SECRETS:
        assert secret not in result.stderr
