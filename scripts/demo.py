"""Seed a demo SDA node on this machine and sync its dataset; see `scripts/demo`.

Everything it creates lives under `.demo/` and in the Postgres databases `bpsync_demo_sda` and
`bpsync_demo_dagster`; running it again starts afresh.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bpsync_dagster_tests.support import crypt4gh_files, sda_database  # noqa: E402
from bpsync_dagster_tests.support.environment import split_crypt4gh  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402

DEMO_DIR = PROJECT_ROOT / ".demo"
DATASET_ID = "SYNC-DEMO-0001"
DAGSTER_DB = "bpsync_demo_dagster"
SDA_DB = "bpsync_demo_sda"
DB_ROLE = "bpsync_demo"
DB_PASSWORD = "bpsync-demo-password"
REMOTE_USER = "demo-remote"
REMOTE_PASSWORD = "demo-remote-password"
PASSPHRASE = "demo-node-passphrase"
DEMO_FILES = {
    "demo/README.txt.c4gh": b"Bigpicture demo dataset: three files synced by bpsync-dagster.\n",
    "demo/slides/slide-001.dcm.c4gh": os.urandom(3 * 1024 * 1024),
    "demo/slides/slide-002.dcm.c4gh": os.urandom(700 * 1024),
}


def admin(*statements: str, database: str = "postgres") -> None:
    with closing(psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}")) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def seed() -> tuple[dict[str, str], bytes]:
    """Create keys, databases and archive; return the environment for `bpsync` and the receiver's secret key."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    for folder in ("keys", "archive", "sync", "dagster_home"):
        (DEMO_DIR / folder).mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", DEMO_DIR / "dagster_home" / "dagster.yaml")
    admin(
        f"DO $$ BEGIN CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'; "
        f"EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"DROP DATABASE IF EXISTS {DAGSTER_DB} WITH (FORCE)",
        f"CREATE DATABASE {DAGSTER_DB} OWNER {DB_ROLE}",
    )
    dsn = sda_database.create_sda_database(SDA_DB)
    admin(
        f"GRANT USAGE ON SCHEMA sda TO {DB_ROLE}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA sda TO {DB_ROLE}",
        database=SDA_DB,
    )
    node = crypt4gh_files.make_key_pair(DEMO_DIR / "keys", "node", PASSPHRASE)
    receiver = crypt4gh_files.make_key_pair(DEMO_DIR / "keys", "receiver", "demo-receiver-passphrase")
    for index, (path, plaintext) in enumerate(DEMO_FILES.items(), start=1):
        header, body = crypt4gh_files.encrypt(plaintext, node.public_key)
        archive_name = f"0000-demo-{index}"
        (DEMO_DIR / "archive" / archive_name).write_bytes(body)
        sda_database.insert_file(
            dsn,
            sda_database.SdaFile(
                stable_id=f"SYNC-DEMO-FILE-{index:04d}",
                submission_user="demo.submitter@example.org",
                submission_file_path=path,
                archive_location=str(DEMO_DIR / "archive"),
                archive_file_path=archive_name,
                archive_file_size=len(body),
                header_hex=header.hex(),
                unencrypted_sha256=crypt4gh_files.sha256_hex(plaintext),
                archived_sha256=crypt4gh_files.sha256_hex(body),
            ),
        )
    sda_database.map_dataset(
        dsn, DATASET_ID, [f"SYNC-DEMO-FILE-{index:04d}" for index in range(1, len(DEMO_FILES) + 1)]
    )
    return {
        "DAGSTER_HOME": str(DEMO_DIR / "dagster_home"),
        "DAGSTER_POSTGRES_HOST": "127.0.0.1",
        "DAGSTER_POSTGRES_PORT": "5432",
        "DAGSTER_POSTGRES_USER": DB_ROLE,
        "DAGSTER_POSTGRES_PASSWORD": DB_PASSWORD,
        "DAGSTER_POSTGRES_DB": DAGSTER_DB,
        "CONFIG_FILE": str(DEMO_DIR / "config.yaml"),
        "C4GH_PASSPHRASE": PASSPHRASE,
        "SYNC_REMOTE_PASSWORD": REMOTE_PASSWORD,
        "DB_PASSWORD": DB_PASSWORD,
    }, receiver.secret_key


def write_config(remote_url: str) -> None:
    config = {
        "sync": {"centerPrefix": "SYNC", "remote": {"host": remote_url, "user": REMOTE_USER}},
        "c4gh": {
            "filePath": str(DEMO_DIR / "keys" / "node.sec.pem"),
            "syncPubKeyPath": str(DEMO_DIR / "keys" / "receiver.pub.pem"),
        },
        "broker": {
            "host": "127.0.0.1",
            "port": 5672,
            "user": "guest",
            "password": "guest",
            "queue": "mapping_stream",
            "vhost": "sda",
        },
        "db": {"host": "127.0.0.1", "port": 5432, "user": DB_ROLE, "database": SDA_DB, "sslmode": "disable"},
        "storage": {
            "archive": {"posix": [{"path": str(DEMO_DIR / "archive")}]},
            "sync": {"posix": [{"path": str(DEMO_DIR / "sync")}]},
        },
    }
    (DEMO_DIR / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def verify(receiver_secret_key: bytes) -> None:
    """Decrypt every synced object with the receiver's key and compare it with the plaintext."""
    for path, plaintext in DEMO_FILES.items():
        header, body = split_crypt4gh((DEMO_DIR / "sync" / path).read_bytes())
        decrypted = crypt4gh_files.decrypt(header, body, receiver_secret_key)
        status = "ok" if decrypted == plaintext else "MISMATCH"
        print(f"  {path}: decrypted with the receiver's key: {status}")
        if decrypted != plaintext:
            raise SystemExit(1)


def _interrupt(_signal_number: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-ui", action="store_true", help="stop after the sync instead of serving the UI")
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    arguments = parser.parse_args()

    demo_environment, receiver_secret_key = seed()
    environment = {**os.environ, **demo_environment}
    with StandInRemoteApi(
        REMOTE_USER, REMOTE_PASSWORD, PROJECT_ROOT / "schemas" / "bigpicture" / "file-sync.json"
    ) as remote:
        write_config(f"{remote.url}/dataset")
        print(f"Demo node seeded under {DEMO_DIR}; stand-in remote sync API at {remote.url}")
        bpsync = [sys.executable, "-m", "bpsync_dagster.cli"]
        print(f"$ bpsync sync {DATASET_ID}", flush=True)
        result = subprocess.run([*bpsync, "sync", DATASET_ID], env=environment, cwd=DEMO_DIR)
        if result.returncode != 0:
            return result.returncode
        print(
            f"The remote received {len(remote.received)} manifest(s) for {[body['dataset_id'] for body in remote.received]}"
        )
        verify(receiver_secret_key)
        if arguments.no_ui:
            return 0
        print(f"\nDagster UI: http://127.0.0.1:{arguments.port}/runs  (the run is tagged dataset_id={DATASET_ID};")
        print("open it and select the copy_files step to see per-file metadata). Ctrl-C stops it.\n", flush=True)
        ui = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(arguments.port),
            ],
            env=environment,
            cwd=DEMO_DIR,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            ui.wait()
        except KeyboardInterrupt:
            ui.send_signal(signal.SIGINT)
            ui.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
