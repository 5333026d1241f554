"""A whole SDA node for end-to-end tests: keys, SDA database, archive and sync storage, remote API,
a Dagster instance on Postgres, and the config file that ties them together."""

import io
import os
import shutil
import subprocess
import sys
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
import yaml
from crypt4gh import header as c4gh_header
from dagster import DagsterInstance

from bpsync_dagster_tests.support import crypt4gh_files, rabbitmq, sda_database
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi
from bpsync_dagster_tests.support.s3_server import SECRET_KEY, S3Endpoint

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FILE_SYNC_SCHEMA = PROJECT_ROOT / "schemas" / "bigpicture" / "file-sync.json"

# Per test session, so that sessions running at the same time never drop each other's databases.
DAGSTER_DB = f"bpsync_test_dagster_{os.getpid()}"
DAGSTER_DB_USER = "bpsync_test_dagster"
DAGSTER_DB_PASSWORD = "dagster-db-secret-29f"
SDA_DB = f"bpsync_test_sda_{os.getpid()}"
# Login roles with exactly the SDA's `sync` and `base` grants, and with SELECT on sda.datasets besides.
SDA_DB_USER = "bpsync_test_sda_sync"
SDA_DB_DATASETS_USER = "bpsync_test_sda_sync_datasets"
SDA_DB_PASSWORD = "sda-db-secret-47c"
SDA_SYNC_ROLE = "bpsync_test_role_sync"
SDA_BASE_ROLE = "bpsync_test_role_base"
REMOTE_USER = "remote-sync-user"
REMOTE_PASSWORD = "remote-api-secret-83b"
NODE_PASSPHRASE = "node-key-passphrase-61d"
SUBMITTER = "submitter@example.org"
ARCHIVE_BUCKET = "archive"

SECRETS = (
    DAGSTER_DB_PASSWORD,
    SDA_DB_PASSWORD,
    REMOTE_PASSWORD,
    NODE_PASSPHRASE,
    SECRET_KEY,
    rabbitmq.SERVICE_PASSWORD,
)


def assert_no_secret(text: str, where: str) -> None:
    """Every `bpsync` the tests run and every daemon and webserver log they read pass through here."""
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{where} shows {len(leaked)} secret(s) of the test configuration"


def _admin_execute(*statements: str) -> None:
    with closing(psycopg2.connect(sda_database.SERVER_DSN)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def create_role(name: str, password: str | None = None) -> None:
    """A login role with `password`, or a group role without one; created or updated."""
    options = f"LOGIN PASSWORD '{password}'" if password else "NOLOGIN"
    _admin_execute(
        f"DO $$ BEGIN CREATE ROLE {name} {options}; "
        f"EXCEPTION WHEN duplicate_object THEN ALTER ROLE {name} {options}; END $$"
    )


def create_dagster_database(name: str = DAGSTER_DB) -> dict[str, str]:
    """A fresh Dagster storage database; the environment `dagster.yaml` reads."""
    create_role(DAGSTER_DB_USER, DAGSTER_DB_PASSWORD)
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name} OWNER {DAGSTER_DB_USER}")
    return {
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": DAGSTER_DB_USER,
        "DAGSTER_POSTGRES_PASSWORD": DAGSTER_DB_PASSWORD,
        "DAGSTER_POSTGRES_DB": name,
    }


def drop_database(name: str) -> None:
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_sda_database(name: str = SDA_DB, schema_version: int = 23) -> str:
    """A fresh SDA database with the SDA's grants: `SDA_DB_USER` holds exactly its roles `sync` and
    `base`, `SDA_DB_DATASETS_USER` also SELECT on sda.datasets. Returns the DSN as administrator."""
    dsn = sda_database.create_sda_database(name, schema_version)
    for role in (SDA_SYNC_ROLE, SDA_BASE_ROLE):
        create_role(role)
    for user in (SDA_DB_USER, SDA_DB_DATASETS_USER):
        create_role(user, SDA_DB_PASSWORD)
        _admin_execute(f"GRANT {SDA_SYNC_ROLE}, {SDA_BASE_ROLE} TO {user}")
    with closing(psycopg2.connect(dsn)) as connection, connection, connection.cursor() as cursor:
        cursor.execute(sda_database.sda_sync_grants(SDA_SYNC_ROLE, SDA_BASE_ROLE))
        cursor.execute(f"GRANT SELECT ON sda.datasets TO {SDA_DB_DATASETS_USER}")
    return dsn


@dataclass(frozen=True)
class FailedSync:
    """A `bpsync sync` that failed because the last file's archived body was missing."""

    dataset_id: str
    files: list["SeededFile"]
    result: subprocess.CompletedProcess[str]
    missing_body: Path
    body: bytes

    @property
    def run_id(self) -> str:
        return self.result.stdout.split(" run ", 1)[1].split()[0]

    def restore_body(self) -> None:
        self.missing_body.write_bytes(self.body)


@dataclass(frozen=True)
class SeededFile:
    accession_id: str
    path: str
    plaintext: bytes
    header: bytes


@dataclass
class Node:
    """One test's SDA node; `archive`/`sync` are `posix` or `s3`."""

    root: Path
    archive: str
    sync: str
    node_keys: crypt4gh_files.KeyPair
    receiver_keys: crypt4gh_files.KeyPair
    sda_dsn: str
    s3: S3Endpoint
    remote: StandInRemoteApi
    dagster_home: Path
    dagster_env: dict[str, str]
    sync_s3_options: dict[str, object] = field(default_factory=dict)
    sync_posix_options: dict[str, object] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    database_user: str = SDA_DB_USER
    dataset_files: dict[str, list[str]] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def sync_dir(self) -> Path:
        return self.root / "sync"

    @property
    def bucket_prefix(self) -> str:
        return f"{self.prefix}-sync"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    def s3_entry(self) -> dict[str, object]:
        """The endpoint part of a storage entry for the node's S3 server (HTTPS with its CA, if it has one)."""
        entry: dict[str, object] = {
            "endpoint": self.s3.endpoint_url,
            "access_key": self.s3.access_key,
            "secret_key": self.s3.secret_key,
            "disable_https": self.s3.endpoint_url.startswith("http:"),
        }
        if self.s3.ca_certificate is not None:
            entry["ca_cert"] = str(self.s3.ca_certificate)
        return entry

    def config(self) -> dict[str, object]:
        archive: dict[str, object] = {"posix": [{"path": str(self.archive_dir)}]}
        if self.archive == "s3":
            archive["s3"] = [{**self.s3_entry(), "bucket_prefix": ARCHIVE_BUCKET}]
        if self.sync == "s3":
            sync: dict[str, object] = {
                "s3": [
                    {
                        **self.s3_entry(),
                        "bucket_prefix": self.bucket_prefix,
                        "chunk_size": "5MB",
                        **self.sync_s3_options,
                    }
                ]
            }
        else:
            sync = {"posix": [{"path": str(self.sync_dir), **self.sync_posix_options}]}
        host, port = self.remote.url.rsplit(":", 1)
        return {
            "sync": {
                "centerPrefix": "SYNC",
                "remote": {"host": f"{host}/some/path", "port": int(port), "user": REMOTE_USER},
            },
            "c4gh": {
                "filePath": str(self.node_keys.private_key_path),
                "passphrase": NODE_PASSPHRASE,
                "syncPubKeyPath": str(self.receiver_keys.public_key_path),
            },
            "broker": {
                "host": "127.0.0.1",
                "port": 5672,
                "user": rabbitmq.SERVICE_USER,
                "password": rabbitmq.SERVICE_PASSWORD,
                "queue": "mapping_stream",
            },
            "db": {
                "host": "127.0.0.1",
                "port": 5432,
                "user": self.database_user,
                "password": SDA_DB_PASSWORD,
                "database": SDA_DB,
                "sslmode": "disable",
            },
            "storage": {"archive": archive, "sync": sync},
        }

    def write_config(self) -> None:
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        self.sync_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config()))

    def environment(self) -> dict[str, str]:
        self.write_config()
        return {
            **{
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("SYNC_", "C4GH_", "DB_", "DATABASE_", "BROKER_", "CONFIGFILE", "CONFIGPATH"))
            },
            **self.dagster_env,
            "DAGSTER_HOME": str(self.dagster_home),
            "CONFIG_FILE": str(self.config_file),
            "SYNC_REMOTE_PASSWORD": REMOTE_PASSWORD,
            **self.extra_env,
        }

    def archive_location(self) -> str:
        return f"{self.s3.endpoint_url}/{ARCHIVE_BUCKET}" if self.archive == "s3" else str(self.archive_dir)

    def put_archived_body(self, name: str, body: bytes) -> None:
        if self.archive == "s3":
            self.s3.client().put_object(Bucket=ARCHIVE_BUCKET, Key=name, Body=body)
        else:
            (self.archive_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.archive_dir / name).write_bytes(body)

    def add_file(
        self,
        accession_id: str,
        path: str,
        plaintext: bytes,
        *,
        header: bytes | None = None,
        body: bytes | None = None,
        archived_sha256: str | None = None,
        archive_file_size: int | None = None,
        submission_user: str = SUBMITTER,
    ) -> SeededFile:
        """Encrypt `plaintext` for the node key and archive it as ingest would."""
        made_header, made_body = crypt4gh_files.encrypt(plaintext, self.node_keys.public_key)
        header = made_header if header is None else header
        body = made_body if body is None else body
        archive_name = f"{self.prefix}/{uuid.uuid4()}"
        self.put_archived_body(archive_name, body)
        sda_database.insert_file(
            self.sda_dsn,
            sda_database.SdaFile(
                stable_id=accession_id,
                submission_user=submission_user,
                submission_file_path=path,
                archive_location=self.archive_location(),
                archive_file_path=archive_name,
                archive_file_size=len(body) if archive_file_size is None else archive_file_size,
                header_hex=header.hex(),
                unencrypted_sha256=crypt4gh_files.sha256_hex(plaintext),
                archived_sha256=crypt4gh_files.sha256_hex(body) if archived_sha256 is None else archived_sha256,
            ),
        )
        return SeededFile(accession_id, path, plaintext, header)

    def archived_body_path(self, accession_id: str) -> Path:
        """Where a file's body lies in a POSIX archive."""
        with closing(psycopg2.connect(self.sda_dsn)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT archive_file_path FROM sda.files WHERE stable_id = %s", (accession_id,))
            (archive_name,) = cursor.fetchone()
        return self.archive_dir / archive_name

    def add_dataset(self, dataset_id: str, files: list[tuple[str, bytes]]) -> list[SeededFile]:
        """Archive `(path, plaintext)` files and map them to the dataset; accession IDs are derived."""
        seeded = [
            self.add_file(f"{dataset_id}-F{index:03d}", f"{self.prefix}/{path}", plaintext)
            for index, (path, plaintext) in enumerate(files)
        ]
        self.map_dataset(dataset_id, [item.accession_id for item in seeded])
        return seeded

    def map_dataset(self, dataset_id: str, accession_ids: list[str]) -> None:
        """Map files to the dataset as the SDA's mapper does, and remember them for `sync`."""
        sda_database.map_dataset(self.sda_dsn, dataset_id, accession_ids)
        self.dataset_files.setdefault(dataset_id, []).extend(accession_ids)

    def sync_arguments(self, dataset_id: str) -> list[str]:
        """`bpsync` arguments that sync a dataset mapped here, naming its files as a mapping message does."""
        return ["sync", dataset_id, *self.dataset_files[dataset_id]]

    def sync_mapped(self, dataset_id: str, *options: str) -> subprocess.CompletedProcess[str]:
        return self.bpsync(*self.sync_arguments(dataset_id), *options)

    def sync_with_a_missing_body(self, name: str) -> FailedSync:
        """Sync a three-file dataset whose last archived body (POSIX) is missing: a failed run."""
        dataset_id = self.dataset_id(name)
        files = self.add_dataset(dataset_id, [(f"f{index}.c4gh", os.urandom(1000 + index)) for index in range(3)])
        missing = self.archived_body_path(files[-1].accession_id)
        body = missing.read_bytes()
        missing.unlink()
        return FailedSync(dataset_id, files, self.sync_mapped(dataset_id), missing, body)

    def dataset_id(self, name: str) -> str:
        return f"SYNC-{self.prefix}-{name}"

    def bpsync(self, *arguments: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run the real `bpsync` command in a fresh process, from an unrelated directory."""
        result = subprocess.run(
            [sys.executable, "-m", "bpsync_dagster.cli", *arguments],
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert_no_secret(result.stdout + result.stderr, f"`bpsync {' '.join(arguments)}`")
        return result

    def synced_object(self, path: str) -> bytes | None:
        """The object written under `path` in sync storage, wherever roll-over put it."""
        if self.sync == "posix":
            target = self.sync_dir / path
            return target.read_bytes() if target.exists() else None
        client = self.s3.client()
        for bucket in self.sync_buckets():
            try:
                return client.get_object(Bucket=bucket, Key=path)["Body"].read()
            except client.exceptions.NoSuchKey:
                continue
        return None

    def sync_buckets(self) -> list[str]:
        names = [bucket["Name"] for bucket in self.s3.client().list_buckets()["Buckets"]]
        return sorted(name for name in names if name.startswith(self.bucket_prefix))

    def visible_sync_names(self) -> list[str]:
        """Every object name visible in sync storage, temporary ones included."""
        if self.sync == "posix":
            return sorted(str(path.relative_to(self.sync_dir)) for path in self.sync_dir.rglob("*") if path.is_file())
        client = self.s3.client()
        return sorted(
            item["Key"]
            for bucket in self.sync_buckets()
            for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])
        )

    def decrypt_synced(self, path: str) -> bytes:
        """Decrypt the synced object with the receiver's private key."""
        data = self.synced_object(path)
        assert data is not None, f"{path} is not in sync storage"
        header, body = split_crypt4gh(data)
        return crypt4gh_files.decrypt(header, body, self.receiver_keys.secret_key)

    def configure_this_process(self, monkeypatch: pytest.MonkeyPatch) -> DagsterInstance:
        """Put the node's configuration in this process's environment (for code that runs in-process)
        and return its Dagster instance."""
        for key, value in self.environment().items():
            monkeypatch.setenv(key, value)
        return self.instance()

    def instance(self) -> DagsterInstance:
        for key, value in self.dagster_env.items():
            os.environ[key] = value
        return DagsterInstance.from_config(str(self.dagster_home))


def split_crypt4gh(data: bytes) -> tuple[bytes, bytes]:
    stream = io.BytesIO(data)
    list(c4gh_header.parse(stream))
    return data[: stream.tell()], data[stream.tell() :]


def make_dagster_home(directory: Path, max_concurrent_runs: int | None = None) -> Path:
    """A `DAGSTER_HOME` holding only the project's `dagster.yaml` (optionally with another run limit)."""
    directory.mkdir(parents=True, exist_ok=True)
    if max_concurrent_runs is None:
        shutil.copy(PROJECT_ROOT / "dagster.yaml", directory / "dagster.yaml")
    else:
        config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
        config["run_coordinator"]["config"]["max_concurrent_runs"] = max_concurrent_runs
        (directory / "dagster.yaml").write_text(yaml.safe_dump(config))
    return directory
