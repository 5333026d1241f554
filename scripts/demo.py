"""A demo SDA node on this machine, synced by bpsync-dagster; see `scripts/demo`.

`demo.py` seeds a node (keys, SDA database, POSIX archive, S3 sync storage on a local S3 server,
a stand-in remote sync API, the SDA RabbitMQ topology), syncs a first dataset with `bpsync sync`,
starts the Dagster webserver and daemon (`dagster dev`), publishes a mapping message for a second
dataset to `mapping_stream` and serves until Ctrl-C. `demo.py publish` (while it runs) seeds and
publishes another dataset. Everything lives under `.demo/` and in the Postgres databases
`bpsync_demo_sda` and `bpsync_demo_dagster`; each start begins afresh.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import closing
from pathlib import Path

import pika
import psycopg2
import yaml
from moto.server import ThreadedMotoServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bpsync_dagster_tests.support import crypt4gh_files, sda_database  # noqa: E402
from bpsync_dagster_tests.support.environment import split_crypt4gh  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402
from bpsync_dagster_tests.support.s3_server import s3_client  # noqa: E402

DEMO_DIR = PROJECT_ROOT / ".demo"
STATE_FILE = DEMO_DIR / "state.json"
DAGSTER_DB = "bpsync_demo_dagster"
SDA_DB = "bpsync_demo_sda"
DB_ROLE = "bpsync_demo"
DB_PASSWORD = "bpsync-demo-password"
REMOTE_USER = "demo-remote"
REMOTE_PASSWORD = "demo-remote-password"
PASSPHRASE = "demo-node-passphrase"
S3_KEYS = {"access_key": "demo-access", "secret_key": "demo-secret-key"}
VHOST = "sda"
SYNC_BUCKET_PREFIX = "sync"


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0


def ensure_services() -> None:
    """Start PostgreSQL and RabbitMQ when they are not running (they usually are)."""
    if not run("pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"):
        log("PostgreSQL is not running; starting it")
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start")
    if not run("rabbitmqctl", "-q", "status"):
        log("RabbitMQ is not running; starting it")
        run("rabbitmq-server", "-detached")
        run("rabbitmqctl", "await_startup")


def admin(*statements: str, database: str = "postgres") -> None:
    with closing(psycopg2.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={database}")) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def declare_topology() -> None:
    """SDA's topology: vhost `sda`, topic exchange `sda`, streams `mapping_stream` and `error_stream`."""
    run("rabbitmqctl", "add_vhost", VHOST)
    run("rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, VHOST))
    channel = connection.channel()
    channel.exchange_declare("sda", "topic", durable=True)
    for queue, routing_key in (("mapping_stream", "mappings"), ("error_stream", "error")):
        channel.queue_delete(queue)
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "stream", "x-max-age": "1M"})
        channel.queue_bind(queue, "sda", routing_key)
    connection.close()


def publish_mapping(dataset_id: str, accession_ids: list[str]) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, VHOST))
    channel = connection.channel()
    channel.confirm_delivery()
    body = {"type": "mapping", "dataset_id": dataset_id, "accession_ids": accession_ids}
    properties = pika.BasicProperties(
        content_type="application/json", delivery_mode=2, correlation_id=str(uuid.uuid4())
    )
    channel.basic_publish("sda", "mappings", json.dumps(body).encode(), properties, mandatory=True)
    connection.close()
    log(f"published to exchange sda, routing key mappings: {json.dumps(body)}")


def seed_dataset(state: dict[str, object], number: int) -> tuple[str, list[str]]:
    """Encrypt a few files for the node key, archive them as ingest would, and map them to a dataset."""
    dataset_id = f"SYNC-DEMO-{number:04d}"
    node_public_key = bytes.fromhex(str(state["node_public_key"]))
    files = {
        f"demo/{dataset_id}/README.txt.c4gh": f"Bigpicture demo dataset {dataset_id}.\n".encode(),
        f"demo/{dataset_id}/slide-1.dcm.c4gh": os.urandom(3 * 1024 * 1024 + number),
        f"demo/{dataset_id}/slide-2.dcm.c4gh": os.urandom(700 * 1024),
    }
    accession_ids = []
    for index, (path, plaintext) in enumerate(files.items(), start=1):
        header, body = crypt4gh_files.encrypt(plaintext, node_public_key)
        accession_id = f"{dataset_id}-FILE-{index}"
        archive_name = f"{uuid.uuid4()}"
        (DEMO_DIR / "archive" / archive_name).write_bytes(body)
        (DEMO_DIR / "plaintext" / path).parent.mkdir(parents=True, exist_ok=True)
        (DEMO_DIR / "plaintext" / path).write_bytes(plaintext)
        sda_database.insert_file(
            str(state["sda_dsn"]),
            sda_database.SdaFile(
                stable_id=accession_id,
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
        accession_ids.append(accession_id)
    sda_database.map_dataset(str(state["sda_dsn"]), dataset_id, accession_ids)
    log(f"seeded dataset {dataset_id}: {len(files)} encrypted files in the archive and the SDA database")
    return dataset_id, accession_ids


def seed_node(s3_endpoint: str, remote_url: str) -> dict[str, object]:
    """Keys, databases, config and Dagster home; the state `publish` needs later."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    for folder in ("keys", "archive", "plaintext", "dagster_home"):
        (DEMO_DIR / folder).mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", DEMO_DIR / "dagster_home" / "dagster.yaml")
    admin(
        f"DO $$ BEGIN CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"DROP DATABASE IF EXISTS {DAGSTER_DB} WITH (FORCE)",
        f"CREATE DATABASE {DAGSTER_DB} OWNER {DB_ROLE}",
    )
    sda_dsn = sda_database.create_sda_database(SDA_DB)
    admin(
        f"GRANT USAGE ON SCHEMA sda TO {DB_ROLE}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA sda TO {DB_ROLE}",
        database=SDA_DB,
    )
    node = crypt4gh_files.make_key_pair(DEMO_DIR / "keys", "node", PASSPHRASE)
    receiver = crypt4gh_files.make_key_pair(DEMO_DIR / "keys", "receiver", "demo-receiver-passphrase")
    config = {
        "sync": {"centerPrefix": "SYNC", "remote": {"host": remote_url, "user": REMOTE_USER}},
        "c4gh": {"filePath": str(node.private_key_path), "syncPubKeyPath": str(receiver.public_key_path)},
        "broker": {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest"},
        "db": {"host": "127.0.0.1", "port": 5432, "user": DB_ROLE, "database": SDA_DB, "sslmode": "disable"},
        "storage": {
            "archive": {"posix": [{"path": str(DEMO_DIR / "archive")}]},
            "sync": {
                "s3": [{"endpoint": s3_endpoint, "disable_https": True, "bucket_prefix": SYNC_BUCKET_PREFIX, **S3_KEYS}]
            },
        },
    }
    (DEMO_DIR / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state = {
        "sda_dsn": sda_dsn,
        "node_public_key": node.public_key.hex(),
        "receiver_secret_key": receiver.secret_key.hex(),
        "s3_endpoint": s3_endpoint,
        "next_dataset": 1,
    }
    STATE_FILE.write_text(json.dumps(state))
    return state


def environment() -> dict[str, str]:
    """What the service processes get: the instance, the config file, and the secrets as env."""
    return {
        **os.environ,
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
        "BROKER_VHOST": VHOST,
        "BROKER_EXCHANGE": "sda",
        "BROKER_QUEUE": "mapping_stream",
        "SYNC_SENSOR_STREAMSTART": "first",
    }


def next_dataset(state: dict[str, object]) -> tuple[str, list[str]]:
    number = int(state["next_dataset"])
    state["next_dataset"] = number + 1
    STATE_FILE.write_text(json.dumps(state))
    return seed_dataset(state, number)


def verify(state: dict[str, object], dataset_id: str) -> bool:
    """Decrypt the dataset's synced objects with the receiver's key and compare with the plaintext."""
    s3 = s3_client(str(state["s3_endpoint"]), S3_KEYS["access_key"], S3_KEYS["secret_key"])
    secret = bytes.fromhex(str(state["receiver_secret_key"]))
    ok = True
    for original in sorted((DEMO_DIR / "plaintext" / "demo" / dataset_id).iterdir()):
        key = str(original.relative_to(DEMO_DIR / "plaintext"))
        header, body = split_crypt4gh(s3.get_object(Bucket=f"{SYNC_BUCKET_PREFIX}1", Key=key)["Body"].read())
        same = crypt4gh_files.decrypt(header, body, secret) == original.read_bytes()
        log(f"  s3://{SYNC_BUCKET_PREFIX}1/{key}: decrypted with the receiver's key: {'ok' if same else 'MISMATCH'}")
        ok = ok and same
    return ok


def _announce(manifest: dict[str, object]) -> None:
    log(f"remote sync API received the manifest of {manifest['dataset_id']} ({len(manifest['dataset_files'])} files)")


def _interrupt(_signal_number: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve(port: int, exit_when_synced: bool) -> int:
    ensure_services()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    s3_endpoint = f"http://127.0.0.1:{s3.get_host_and_port()[1]}"
    schema = PROJECT_ROOT / "schemas" / "bigpicture" / "file-sync.json"
    ui: subprocess.Popen[bytes] | None = None
    with StandInRemoteApi(REMOTE_USER, REMOTE_PASSWORD, schema, on_accept=_announce) as remote:
        try:
            state = seed_node(s3_endpoint, f"{remote.url}/dataset")
            declare_topology()
            log(f"node seeded under {DEMO_DIR}; S3 sync storage at {s3_endpoint}; remote sync API at {remote.url}")
            first, _ = next_dataset(state)
            log(f"$ bpsync sync {first}")
            if subprocess.run(
                [sys.executable, "-m", "bpsync_dagster.cli", "sync", first], env=environment()
            ).returncode:
                return 1
            verify(state, first)
            log(f"starting the Dagster webserver and daemon (dagster dev) on http://127.0.0.1:{port}")
            ui = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml")]
                + ["-h", "127.0.0.1", "-p", str(port)],
                env=environment(),
                cwd=DEMO_DIR,
                start_new_session=True,
            )
            second, accession_ids = next_dataset(state)
            publish_mapping(second, accession_ids)
            log("the sensor dataset_mapping_sensor turns it into a sync_dataset run within seconds")
            log(f"Dagster UI: http://127.0.0.1:{port}/runs  (runs are tagged dataset_id; open one and select")
            log(
                "the copy_files step for its per-file metadata). Another dataset: ./scripts/demo publish. Ctrl-C stops."
            )
            signal.signal(signal.SIGTERM, _interrupt)
            deadline = time.monotonic() + 300
            while not any(body["dataset_id"] == second for body in remote.received):
                if ui.poll() is not None or time.monotonic() > deadline:
                    log(f"{second} was not synced")
                    return 1
                time.sleep(1)
            if not verify(state, second):
                return 1
            if exit_when_synced:
                return 0
            ui.wait()
        except KeyboardInterrupt:
            log("stopping")
        finally:
            if ui is not None and ui.poll() is None:
                os.killpg(ui.pid, signal.SIGINT)
                try:
                    ui.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(ui.pid, signal.SIGKILL)
            s3.stop()
    return 0


def publish_another() -> int:
    if not STATE_FILE.exists():
        log("no demo is running: start it with ./scripts/demo")
        return 1
    state = json.loads(STATE_FILE.read_text())
    dataset_id, accession_ids = next_dataset(state)
    publish_mapping(dataset_id, accession_ids)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve", "publish"], default="serve")
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    parser.add_argument("--exit-when-synced", action="store_true", help="stop once the published dataset is synced")
    arguments = parser.parse_args()
    if arguments.command == "publish":
        return publish_another()
    return serve(arguments.port, arguments.exit_when_synced)


if __name__ == "__main__":
    sys.exit(main())
