"""A demo SDA node on this machine, synced by bpsync-dagster; `scripts/demo` runs it in the project's venv.

`demo.py` (or `demo.py serve`) checks what it needs, seeds a node (keys, an SDA database, a POSIX
archive, S3 sync storage on a local S3 server, a stand-in remote sync API, the SDA RabbitMQ
topology in a vhost of its own), syncs a first dataset with `bpsync sync`, starts the Dagster
webserver and daemon, publishes a mapping message for a second dataset, waits until the sensor's run
has synced it, prints a summary and serves until Ctrl-C, SIGTERM or SIGHUP. Each start begins afresh.

`demo.py publish` seeds and publishes another dataset to the demo that serves, and waits for its run.
`demo.py clean` removes everything the demo made: its directory, databases, roles, vhost and user.

Everything is named after `--name` (databases NAME_sda and NAME_dagster, roles NAME and NAME_sync,
vhost NAME, RabbitMQ user NAME_sync) and lives under `--dir`: a second demo, such as the tests',
uses other names, another directory and another `--port`, and leaves the first one alone.

The demo administers PostgreSQL and RabbitMQ on this machine: as the PostgreSQL role named by
$BPSYNC_DEMO_POSTGRES (a libpq connection string; default: user postgres on 127.0.0.1:5432 without a
password), with `rabbitmqctl` (root, or a user that can read RabbitMQ's Erlang cookie), and over
AMQP as the user of $BPSYNC_DEMO_RABBITMQ (default amqp://guest:guest@127.0.0.1:5672).
"""

import argparse
import fcntl
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import pika
import psycopg2
import requests
import yaml
from moto.server import ThreadedMotoServer
from psycopg2.extensions import make_dsn, parse_dsn
from psycopg2.sql import SQL, Composable, Identifier, Literal

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bpsync_dagster_tests.support import crypt4gh_files, sda_database  # noqa: E402
from bpsync_dagster_tests.support.environment import split_crypt4gh  # noqa: E402
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi  # noqa: E402
from bpsync_dagster_tests.support.s3_server import s3_client  # noqa: E402
from bpsync_dagster_tests.support.webserver import WORKSPACE_QUERY, graphql  # noqa: E402

DEFAULT_DIR = PROJECT_ROOT / ".demo"
DEFAULT_NAME = "bpsync_demo"
DEFAULT_PORT = 3000
POSTGRES_VARIABLE = "BPSYNC_DEMO_POSTGRES"
DEFAULT_POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
RABBITMQ_VARIABLE = "BPSYNC_DEMO_RABBITMQ"
DEFAULT_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"
EXCHANGE = "sda"
MAPPING_QUEUE = "mapping_stream"
ERROR_QUEUE = "error_stream"
# What the SDA grants a service user on its vhost: configure nothing, write the exchange, read everything.
SERVICE_PERMISSIONS = ("^$", f"^{EXCHANGE}$", ".*")
CENTER_PREFIX = "SYNC"
REMOTE_USER = "demo-remote"
SYNC_BUCKET_PREFIX = "sync"
SUBMITTER = "demo.submitter@example.org"
MARKER = ".bpsync-demo"
OWNER_COMMENT = "bpsync demo of "
SYNC_TIMEOUT_SECONDS = 300
STOP_TIMEOUT_SECONDS = 60
VENV_BIN = Path(sys.executable).parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RUNS_QUERY = """
query DatasetRuns($datasetId: String!) {
  runsOrError(filter: {tags: [{key: "dataset_id", value: $datasetId}]}) {
    __typename
    ... on Runs { results { runId status } }
  }
}
"""


class DemoError(Exception):
    """What stops the demo, in one line that says what is wrong and what to do."""


class Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP: stop what the demo started."""


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def step(number: int, total: int, message: str) -> None:
    log(f"step {number}/{total}: {message}")


def first_line(error: BaseException | str) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def shown(path: Path) -> str:
    """`path` as the user types it: relative to the project root (where `scripts/demo` runs), when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Demo:
    """The names and files of one demo node."""

    directory: Path
    name: str
    port: int

    @property
    def sda_database(self) -> str:
        return f"{self.name}_sda"

    @property
    def dagster_database(self) -> str:
        return f"{self.name}_dagster"

    @property
    def dagster_role(self) -> str:
        return self.name

    @property
    def sda_role(self) -> str:
        return f"{self.name}_sync"

    @property
    def vhost(self) -> str:
        return self.name

    @property
    def broker_user(self) -> str:
        return f"{self.name}_sync"

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    @property
    def env_file(self) -> Path:
        return self.directory / "env"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serving_pid(self) -> int | None:
        """The PID of the `serve` that holds this directory's lock, or None when nothing serves from it."""
        lock = self.directory / "serving.lock"
        if not lock.exists():
            return None
        with lock.open() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
        return None

    def hold_lock(self) -> TextIO:
        """Mark this directory as served by this process, for as long as the returned file stays open."""
        handle = (self.directory / "serving.lock").open("w")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict[str, Any]) -> None:
        write_private(self.state_file, json.dumps(state, indent=2))


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Admin:
    """How the demo administers PostgreSQL and RabbitMQ (from $BPSYNC_DEMO_POSTGRES and $BPSYNC_DEMO_RABBITMQ)."""

    postgres: str
    rabbitmq: str

    @classmethod
    def from_environment(cls) -> "Admin":
        postgres = os.environ.get(POSTGRES_VARIABLE) or DEFAULT_POSTGRES
        rabbitmq = os.environ.get(RABBITMQ_VARIABLE) or DEFAULT_RABBITMQ
        try:
            parse_dsn(postgres)
        except psycopg2.ProgrammingError as error:
            raise DemoError(f"{POSTGRES_VARIABLE} is not a libpq connection string: {first_line(error)}") from None
        if urlsplit(rabbitmq).scheme != "amqp" or not urlsplit(rabbitmq).hostname:
            raise DemoError(f"{RABBITMQ_VARIABLE} must be amqp://USER:PASSWORD@HOST:PORT")
        return cls(postgres, rabbitmq)

    @property
    def postgres_host(self) -> str:
        host = str(parse_dsn(self.postgres).get("host") or "127.0.0.1")
        return "127.0.0.1" if host.startswith("/") else host

    @property
    def postgres_port(self) -> int:
        return int(parse_dsn(self.postgres).get("port") or 5432)

    def postgres_dsn(self, database: str = "postgres") -> str:
        return make_dsn(self.postgres, dbname=database, connect_timeout=10)

    def describe_postgres(self) -> str:
        parameters = parse_dsn(self.postgres)
        user = parameters.get("user") or os.environ.get("PGUSER") or "(your login name)"
        return f"PostgreSQL user {user} at {self.postgres_host}:{self.postgres_port}"

    def sql(self, *statements: str | Composable, database: str = "postgres") -> None:
        with closing(psycopg2.connect(self.postgres_dsn(database))) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)

    def query(
        self, statement: str, parameters: tuple[Any, ...] = (), database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        with closing(psycopg2.connect(self.postgres_dsn(database))) as connection, connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchall()

    @property
    def broker(self) -> tuple[str, int, str, str]:
        """Host, port, user and password of $BPSYNC_DEMO_RABBITMQ."""
        url = urlsplit(self.rabbitmq)
        return str(url.hostname), url.port or 5672, unquote(url.username or "guest"), unquote(url.password or "guest")

    def amqp(self, vhost: str) -> pika.BlockingConnection:
        host, port, user, password = self.broker
        parameters = pika.ConnectionParameters(
            host, port, vhost, pika.PlainCredentials(user, password), socket_timeout=10, blocked_connection_timeout=10
        )
        return pika.BlockingConnection(parameters)


def rabbitmqctl(*arguments: str, shown_arguments: int | None = None) -> str:
    """Run `rabbitmqctl -q`; its output, or DemoError naming the command (up to `shown_arguments`
    arguments: the rest may be a password) and its last line of error."""
    command = ["rabbitmqctl", "-q", *arguments]
    named = " ".join(arguments[:shown_arguments])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise DemoError(
            "RabbitMQ: rabbitmqctl is not on PATH; the demo needs it to make its vhost and user "
            "(Debian: apt-get install rabbitmq-server)"
        ) from None
    except subprocess.TimeoutExpired:
        raise DemoError(f"RabbitMQ: `rabbitmqctl {named}` did not answer within 60 s") from None
    if result.returncode != 0:
        errors = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise DemoError(f"RabbitMQ: `rabbitmqctl {named}` failed: {errors[-1] if errors else result.returncode}")
    return result.stdout


# What this machine must offer: checked before anything is made.


def ensure_services() -> None:
    """Start PostgreSQL and RabbitMQ when they are installed here but not running (they usually run)."""
    quiet = {"capture_output": True, "timeout": 120}
    if shutil.which("pg_isready") and subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], **quiet).returncode:
        clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        if clusters and shutil.which("pg_ctlcluster"):
            log("PostgreSQL is not running; starting it")
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"], **quiet)
    if shutil.which("rabbitmq-server") and subprocess.run(["rabbitmqctl", "-q", "status"], **quiet).returncode:
        log("RabbitMQ is not running; starting it")
        subprocess.run(["rabbitmq-server", "-detached"], **quiet)
        subprocess.run(["rabbitmqctl", "await_startup"], **quiet)


def check_postgres(admin: Admin) -> None:
    try:
        ((user, superuser, create_database, create_role),) = admin.query(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        )
    except psycopg2.Error as error:
        raise DemoError(
            f"PostgreSQL: cannot log in as {admin.describe_postgres()} ({first_line(error)}); the demo needs a role "
            f"that may create databases and roles: set {POSTGRES_VARIABLE} to its libpq connection string, "
            f"e.g. {POSTGRES_VARIABLE}='host=127.0.0.1 port=5432 user=postgres password=…'"
        ) from None
    if not (superuser or (create_database and create_role)):
        raise DemoError(
            f"PostgreSQL: role {user} may not create databases and roles (CREATEDB, CREATEROLE); "
            f"set {POSTGRES_VARIABLE} to the connection string of a role that may"
        )


def check_rabbitmq(admin: Admin) -> None:
    try:
        rabbitmqctl("list_vhosts")
    except DemoError as error:
        raise DemoError(
            f"{error} (the demo runs rabbitmqctl to make its vhost and user: run it as root, "
            "or as a user that can read RabbitMQ's Erlang cookie)"
        ) from None
    host, port, user, _ = admin.broker
    try:
        admin.amqp("/").close()
    except pika.exceptions.AMQPError as error:
        cause = "login refused" if isinstance(error, pika.exceptions.ProbableAuthenticationError) else repr(error)
        raise DemoError(
            f"RabbitMQ: cannot connect as {user} to {host}:{port} ({cause}); the demo declares its topology as "
            f"that user: set {RABBITMQ_VARIABLE}=amqp://USER:PASSWORD@HOST:PORT to a user with access to vhost /"
        ) from None


def check_port(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise DemoError(
                f"port {port} on 127.0.0.1 is in use (another demo?): choose another with --port N"
            ) from None


def is_demo_directory(directory: Path) -> bool:
    """Absent, empty, or made by a demo (this one's marker, or an earlier version's state.json)."""
    if not directory.exists():
        return True
    return not any(directory.iterdir()) or (directory / MARKER).exists() or (directory / "state.json").exists()


def check_directory(demo: Demo) -> None:
    pid = demo.serving_pid()
    if pid is not None:
        raise DemoError(
            f"a demo already serves from {shown(demo.directory)} (pid {pid}): stop it first, "
            "or start a second one with its own --dir, --name and --port"
        )
    if not is_demo_directory(demo.directory):
        raise DemoError(f"{demo.directory} exists and is not a demo directory: choose another with --dir")


def check_names(demo: Demo, admin: Admin) -> None:
    """Refuse names in use by a demo that serves from another directory (its Dagster database names that directory)."""
    rows = admin.query(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (demo.dagster_database,)
    )
    comment = rows[0][0] if rows else None
    if not comment or not comment.startswith(OWNER_COMMENT):
        return
    owner = Demo(Path(comment.removeprefix(OWNER_COMMENT)), demo.name, demo.port)
    pid = owner.serving_pid() if owner.directory != demo.directory else None
    if pid is not None:
        raise DemoError(
            f"the names {demo.name}_* are in use by the demo serving from {owner.directory} (pid {pid}): "
            "choose other ones with --name (and --dir and --port)"
        )


def check_prerequisites(demo: Demo, admin: Admin) -> None:
    check_directory(demo)
    check_port(demo.port)
    ensure_services()
    check_postgres(admin)
    check_names(demo, admin)
    check_rabbitmq(admin)
    if not (VENV_BIN / "crypt4gh-keygen").exists():
        raise DemoError(f"{VENV_BIN / 'crypt4gh-keygen'} is missing: install the project with its [test] extra")


# The node.


def create_role(name: str, password: str) -> str:
    return (
        f"DO $$ BEGIN CREATE ROLE {name} LOGIN PASSWORD '{password}'; "
        f"EXCEPTION WHEN duplicate_object THEN ALTER ROLE {name} LOGIN PASSWORD '{password}'; END $$"
    )


def create_databases(demo: Demo, admin: Admin, passwords: dict[str, str]) -> None:
    """Dagster's storage database (owned by NAME) and an SDA database read by NAME_sync with exactly the
    grants the SDA gives its `sync` and `base` roles: no SELECT on sda.datasets."""
    admin.sql(
        f"DROP DATABASE IF EXISTS {demo.sda_database} WITH (FORCE)",
        f"DROP DATABASE IF EXISTS {demo.dagster_database} WITH (FORCE)",
        create_role(demo.dagster_role, passwords["dagster_db"]),
        create_role(demo.sda_role, passwords["sda_db"]),
        f"CREATE DATABASE {demo.dagster_database} OWNER {demo.dagster_role}",
        f"CREATE DATABASE {demo.sda_database}",
        SQL("COMMENT ON DATABASE {} IS {}").format(
            Identifier(demo.dagster_database), Literal(f"{OWNER_COMMENT}{demo.directory}")
        ),
    )
    admin.sql(
        sda_database.SDA_DDL,
        "INSERT INTO sda.dbschema_version (version, description) VALUES (23, 'bpsync-dagster demo')",
        sda_database.sda_sync_grants(sync_role=demo.sda_role, base_role=demo.sda_role),
        database=demo.sda_database,
    )
    login = make_dsn(
        host=admin.postgres_host,
        port=admin.postgres_port,
        user=demo.sda_role,
        password=passwords["sda_db"],
        dbname=demo.sda_database,
        connect_timeout=10,
    )
    try:
        psycopg2.connect(login).close()
    except psycopg2.Error as error:
        raise DemoError(
            f"PostgreSQL: the demo's role {demo.sda_role} cannot log in with its password at "
            f"{admin.postgres_host}:{admin.postgres_port} ({first_line(error)}): pg_hba.conf must allow password "
            "logins over TCP"
        ) from None


def declare_topology(demo: Demo, admin: Admin, password: str) -> None:
    """A fresh vhost NAME with SDA's topology (topic exchange `sda`, streams `mapping_stream` bound to
    `mappings` and `error_stream` bound to `error`) and the service's user NAME_sync with the SDA's permissions."""
    if demo.vhost in rabbitmqctl("list_vhosts").split():
        rabbitmqctl("delete_vhost", demo.vhost)
    rabbitmqctl("add_vhost", demo.vhost)
    _, _, admin_user, _ = admin.broker
    rabbitmqctl("set_permissions", "-p", demo.vhost, admin_user, ".*", ".*", ".*")
    if demo.broker_user in user_names():
        rabbitmqctl("change_password", demo.broker_user, password, shown_arguments=2)
    else:
        rabbitmqctl("add_user", demo.broker_user, password, shown_arguments=2)
    rabbitmqctl("set_permissions", "-p", demo.vhost, demo.broker_user, *SERVICE_PERMISSIONS)
    connection = admin.amqp(demo.vhost)
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, "topic", durable=True)
        for queue, routing_key in ((MAPPING_QUEUE, "mappings"), (ERROR_QUEUE, "error")):
            channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "stream", "x-max-age": "1D"})
            channel.queue_bind(queue, EXCHANGE, routing_key)
    finally:
        connection.close()


def user_names() -> list[str]:
    return [line.split("\t")[0] for line in rabbitmqctl("list_users").splitlines()[1:] if line.strip()]


def make_node(demo: Demo, admin: Admin, s3_endpoint: str, remote_url: str, remote_password: str) -> dict[str, Any]:
    """Keys, databases, vhost, config file and env file; the state `publish` needs."""
    shutil.rmtree(demo.directory, ignore_errors=True)
    for folder in ("keys", "archive", "plaintext", "dagster_home", "logs"):
        (demo.directory / folder).mkdir(parents=True)
    os.chmod(demo.directory, 0o700)
    (demo.directory / MARKER).write_text("made by scripts/demo; removed by `scripts/demo clean`\n")
    shutil.copy(PROJECT_ROOT / "dagster.yaml", demo.directory / "dagster_home" / "dagster.yaml")
    passwords = {key: secrets.token_hex(16) for key in ("dagster_db", "sda_db", "broker", "passphrase")}
    create_databases(demo, admin, passwords)
    declare_topology(demo, admin, passwords["broker"])
    node = crypt4gh_files.make_key_pair(demo.directory / "keys", "node", passwords["passphrase"])
    receiver = crypt4gh_files.make_key_pair(demo.directory / "keys", "receiver", secrets.token_hex(16))
    broker_host, broker_port, _, _ = admin.broker
    config = {
        "sync": {
            "centerPrefix": CENTER_PREFIX,
            "remote": {"host": remote_url, "user": REMOTE_USER},
            "sensor": {"streamStart": "first"},
        },
        "c4gh": {"filePath": str(node.private_key_path), "syncPubKeyPath": str(receiver.public_key_path)},
        "broker": {
            "host": broker_host,
            "port": broker_port,
            "user": demo.broker_user,
            "vhost": demo.vhost,
            "exchange": EXCHANGE,
            "queue": MAPPING_QUEUE,
        },
        "db": {
            "host": admin.postgres_host,
            "port": admin.postgres_port,
            "user": demo.sda_role,
            "database": demo.sda_database,
            "sslmode": "disable",
        },
        "storage": {
            "archive": {"posix": [{"path": str(demo.directory / "archive")}]},
            "sync": {
                "s3": [
                    {
                        "endpoint": s3_endpoint,
                        "disable_https": True,
                        "bucket_prefix": SYNC_BUCKET_PREFIX,
                        "access_key": "demo-access",
                        "secret_key": "demo-secret-key",
                    }
                ]
            },
        },
    }
    (demo.directory / "config.yaml").write_text(
        "# The demo node's configuration; its secrets are in the file env beside it, except the key of the\n"
        "# demo's local S3 server (storage entries are read from this file only).\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    environment = {
        "CONFIG_FILE": str(demo.directory / "config.yaml"),
        "DAGSTER_HOME": str(demo.directory / "dagster_home"),
        "DAGSTER_POSTGRES_HOST": admin.postgres_host,
        "DAGSTER_POSTGRES_PORT": str(admin.postgres_port),
        "DAGSTER_POSTGRES_USER": demo.dagster_role,
        "DAGSTER_POSTGRES_PASSWORD": passwords["dagster_db"],
        "DAGSTER_POSTGRES_DB": demo.dagster_database,
        "C4GH_PASSPHRASE": passwords["passphrase"],
        "DB_PASSWORD": passwords["sda_db"],
        "BROKER_PASSWORD": passwords["broker"],
        "SYNC_REMOTE_PASSWORD": remote_password,
    }
    write_private(
        demo.env_file,
        f"# The demo node of {shown(demo.directory)} for bpsync and Dagster: {use_line(demo)}\n"
        + "".join(f"export {key}={shlex.quote(value)}\n" for key, value in environment.items()),
    )
    state = {
        "name": demo.name,
        "port": demo.port,
        "s3_endpoint": s3_endpoint,
        "node_public_key": node.public_key.hex(),
        "receiver_secret_key": receiver.secret_key.hex(),
        "next_dataset": 1,
        "pids": {},
    }
    demo.save_state(state)
    return state


def use_line(demo: Demo) -> str:
    bpsync = VENV_BIN / "bpsync"
    return f". {shlex.quote(shown(demo.env_file))} && {shlex.quote(shown(bpsync))} check"


def service_environment(demo: Demo, temporary: Path) -> dict[str, str]:
    """This process's environment with the env file's variables: what the webserver, daemon and `bpsync` get.
    Their temporary files (Dagster's code servers' sockets among them) go to `temporary`, which the demo
    removes when it stops, however they ended."""
    variables = {**os.environ, "TMPDIR": str(temporary)}
    for line in demo.env_file.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            variables[key] = shlex.split(value)[0] if value else ""
    return variables


def seed_dataset(demo: Demo, admin: Admin, state: dict[str, Any]) -> tuple[str, list[str]]:
    """Encrypt a few files for the node key, archive them as ingest would, and map them to the next dataset."""
    number = int(state["next_dataset"])
    state["next_dataset"] = number + 1
    demo.save_state(state)
    dataset_id = f"{CENTER_PREFIX}-DEMO-{number:04d}"
    node_public_key = bytes.fromhex(state["node_public_key"])
    files = {
        f"demo/{dataset_id}/README.txt.c4gh": f"Bigpicture demo dataset {dataset_id}.\n".encode(),
        f"demo/{dataset_id}/slide-1.dcm.c4gh": os.urandom(3 * 1024 * 1024 + number),
        f"demo/{dataset_id}/slide-2.dcm.c4gh": os.urandom(700 * 1024),
    }
    sda_dsn = admin.postgres_dsn(demo.sda_database)
    accession_ids = []
    for index, (path, plaintext) in enumerate(files.items(), start=1):
        header, body = crypt4gh_files.encrypt(plaintext, node_public_key)
        accession_id = f"{dataset_id}-FILE-{index}"
        archive_name = str(uuid.uuid4())
        (demo.directory / "archive" / archive_name).write_bytes(body)
        plaintext_path = demo.directory / "plaintext" / path
        plaintext_path.parent.mkdir(parents=True, exist_ok=True)
        plaintext_path.write_bytes(plaintext)
        sda_database.insert_file(
            sda_dsn,
            sda_database.SdaFile(
                stable_id=accession_id,
                submission_user=SUBMITTER,
                submission_file_path=path,
                archive_location=str(demo.directory / "archive"),
                archive_file_path=archive_name,
                archive_file_size=len(body),
                header_hex=header.hex(),
                unencrypted_sha256=crypt4gh_files.sha256_hex(plaintext),
                archived_sha256=crypt4gh_files.sha256_hex(body),
            ),
        )
        accession_ids.append(accession_id)
    sda_database.map_dataset(sda_dsn, dataset_id, accession_ids)
    size = sum(len(plaintext) for plaintext in files.values())
    log(f"seeded {dataset_id}: {len(files)} files ({size / 1024 / 1024:.1f} MiB), encrypted, archived and mapped")
    return dataset_id, accession_ids


def publish_mapping(demo: Demo, admin: Admin, dataset_id: str, accession_ids: list[str]) -> None:
    body = {"type": "mapping", "dataset_id": dataset_id, "accession_ids": accession_ids}
    connection = admin.amqp(demo.vhost)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, correlation_id=str(uuid.uuid4())
        )
        channel.basic_publish(EXCHANGE, "mappings", json.dumps(body).encode(), properties, mandatory=True)
    finally:
        connection.close()
    log(f"published a mapping of {dataset_id} to exchange {EXCHANGE} (vhost {demo.vhost}), routing key mappings")


def verify(demo: Demo, state: dict[str, Any], dataset_id: str) -> bool:
    """Decrypt the dataset's synced objects with the receiver's key and compare them with the plaintext."""
    s3 = s3_client(state["s3_endpoint"], "demo-access", "demo-secret-key")
    secret = bytes.fromhex(state["receiver_secret_key"])
    plaintext_root = demo.directory / "plaintext"
    results = []
    for original in sorted((plaintext_root / "demo" / dataset_id).iterdir()):
        key = str(original.relative_to(plaintext_root))
        header, body = split_crypt4gh(s3.get_object(Bucket=f"{SYNC_BUCKET_PREFIX}1", Key=key)["Body"].read())
        same = crypt4gh_files.decrypt(header, body, secret) == original.read_bytes()
        log(f"  s3://{SYNC_BUCKET_PREFIX}1/{key}: decrypted with the receiver's key: {'ok' if same else 'MISMATCH'}")
        results.append(same)
    return all(results)


# The services.


class Service:
    """`<venv>/bin/<program>` in a session of its own, its output in `<dir>/logs/<log_name>.log`."""

    def __init__(self, program: str, arguments: list[str], log_name: str) -> None:
        self.program = program
        self.command = [str(VENV_BIN / program), *arguments]
        self.log_name = log_name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, demo: Demo, environment: dict[str, str]) -> None:
        with (demo.logs / f"{self.log_name}.log").open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                env=environment,
                cwd=demo.directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """SIGTERM to its process group (it and its code server), SIGKILL if it has not ended in time."""
        if self.process is None or self.process.poll() is not None:
            return
        for number, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, number)
                self.process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # what it left of its group, e.g. a code server
        except ProcessLookupError:
            pass


def webserver(port: int) -> Service:
    """The UI, on the loopback only: it has no authentication and can launch runs."""
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    return Service("dagster-webserver", ["-w", workspace, "-h", "127.0.0.1", "-p", str(port)], "webserver")


def daemon() -> Service:
    return Service("dagster-daemon", ["run", "-w", str(PROJECT_ROOT / "workspace.yaml")], "daemon")


def check_running(demo: Demo, services: list[Service]) -> None:
    for service in services:
        status = service.exited()
        if status is not None:
            raise DemoError(
                f"{service.program} exited with status {status}: see {shown(demo.logs / (service.log_name + '.log'))}"
            )


def wait_for_ui(demo: Demo, services: list[Service], timeout: float = 180) -> None:
    """Until the webserver answers and has loaded the code location `bpsync`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_running(demo, services)
        try:
            workspace = graphql(demo.ui, WORKSPACE_QUERY, timeout=10)["workspaceOrError"]
            entries = workspace.get("locationEntries") or []
            loaded = [entry for entry in entries if entry["loadStatus"] == "LOADED"]
            failed = [
                entry for entry in loaded if (entry["locationOrLoadError"] or {}).get("__typename") == "PythonError"
            ]
            if failed:
                raise DemoError(
                    f"the code location failed to load: {first_line(failed[0]['locationOrLoadError']['message'])}"
                )
            if loaded:
                return
        except (requests.RequestException, AssertionError, KeyError):
            pass
        time.sleep(1)
    raise DemoError(f"the Dagster UI at {demo.ui} was not ready after {timeout:.0f} s: see {shown(demo.logs)}")


def dataset_runs(demo: Demo, dataset_id: str) -> list[dict[str, str]]:
    """The dataset's runs (tag dataset_id) as the webserver lists them, newest first."""
    answer = graphql(demo.ui, RUNS_QUERY, {"datasetId": dataset_id}, timeout=10)["runsOrError"]
    return answer.get("results") or []


def wait_for_run(
    demo: Demo, dataset_id: str, services: list[Service], timeout: float = SYNC_TIMEOUT_SECONDS
) -> dict[str, str]:
    """The dataset's first run once it has ended; DemoError when none has within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_running(demo, services)
        try:
            runs = dataset_runs(demo, dataset_id)
        except (requests.RequestException, AssertionError):
            runs = []
        if runs and runs[-1]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return runs[-1]
        time.sleep(1)
    raise DemoError(
        f"no run synced {dataset_id} within {timeout:.0f} s: see {shown(demo.logs / 'daemon.log')} and {demo.ui}/runs"
    )


def _stop(signal_number: int, _frame: FrameType | None) -> None:
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise Stop(signal.Signals(signal_number).name)


@contextmanager
def stoppable() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise Stop, also when the demo was started in the background (where SIGINT
    is ignored); once stopping, further signals are ignored until everything has stopped."""
    for number in STOP_SIGNALS:
        signal.signal(number, _stop)
    try:
        yield
    finally:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)


def run_bpsync_sync(demo: Demo, temporary: Path, dataset_id: str, accession_ids: list[str]) -> str:
    """`bpsync sync` as a user would run it: its progress (stdout) indented here, its log (stderr: Dagster's
    and the service's log lines) in logs/bpsync-sync.log; the run ID."""
    log_path = demo.logs / "bpsync-sync.log"
    log(f"$ bpsync sync {dataset_id} {' '.join(accession_ids)}    (its log: {shown(log_path)})")
    with log_path.open("a") as errors:
        process = subprocess.Popen(
            [str(VENV_BIN / "bpsync"), "sync", dataset_id, *accession_ids],
            env=service_environment(demo, temporary),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        run_id = ""
        assert process.stdout is not None
        for line in process.stdout:
            print(f"    {line.rstrip()}", flush=True)
            if found := re.search(r": run ([0-9a-f-]{36})", line):
                run_id = found.group(1)
    if process.wait() != 0:
        for line in log_path.read_text().splitlines():
            if line.startswith("bpsync:"):
                print(f"    {line}", flush=True)
        raise DemoError(f"`bpsync sync {dataset_id}` failed: see {shown(log_path)}")
    return run_id


def summary(demo: Demo, state: dict[str, Any], synced: list[tuple[str, str, str]], started: float) -> None:
    logs = shown(demo.logs)
    publish = "./scripts/demo publish" + options(demo)
    lines = [
        f"ready in {time.monotonic() - started:.0f} s. Synced to s3://{SYNC_BUCKET_PREFIX}1 on {state['s3_endpoint']}, "
        "every object decrypted with the receiver's key and compared:",
        *(f"  {dataset_id}  by {how:<24} run {run_id[:8]}" for dataset_id, how, run_id in synced),
        f"Dagster UI:  {demo.ui}/runs  (open a run, select a step copy_files[…]: its per-file metadata)",
        f"             {demo.ui}/assets/synced_dataset  (the inventory: one partition per dataset)",
        f"             {demo.ui}/automation  (dataset_mapping_sensor and its ticks)",
        f"bpsync:      {use_line(demo)}",
        f"another:     {publish}  (a mapping message for the next dataset; the sensor syncs it)",
        f"logs:        {logs}/webserver.log, {logs}/daemon.log",
        f"stop:        Ctrl-C here (or kill -TERM {os.getpid()}); then ./scripts/demo clean{options(demo)} "
        "removes everything the demo made",
    ]
    print("", flush=True)
    for line in lines:
        log(line)
    print("", flush=True)


def options(demo: Demo) -> str:
    """The command-line options that name this demo, when they are not the defaults."""
    given = []
    if demo.directory.resolve() != DEFAULT_DIR.resolve():
        given.append(f" --dir {shlex.quote(str(demo.directory))}")
    if demo.name != DEFAULT_NAME:
        given.append(f" --name {demo.name}")
    if demo.port != DEFAULT_PORT:
        given.append(f" --port {demo.port}")
    return "".join(given)


def serve(demo: Demo, exit_when_synced: bool) -> int:
    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the S3 server's request log
    admin = Admin.from_environment()
    total = 5
    step(1, total, "checking PostgreSQL, RabbitMQ, rabbitmqctl and the port")
    check_prerequisites(demo, admin)
    services = [webserver(demo.port), daemon()]
    lock: TextIO | None = None
    s3: ThreadedMotoServer | None = None
    remote_password = secrets.token_hex(16)
    schema = PROJECT_ROOT / "schemas" / "bigpicture" / "file-sync.json"
    temporary = Path(tempfile.mkdtemp(prefix=f"{demo.name}-"))
    try:
        with stoppable(), StandInRemoteApi(REMOTE_USER, remote_password, schema) as remote:
            s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            s3.start()
            s3_endpoint = f"http://127.0.0.1:{s3.get_host_and_port()[1]}"
            step(2, total, f"seeding a node under {shown(demo.directory)}")
            state = make_node(demo, admin, s3_endpoint, f"{remote.url}/dataset", remote_password)
            lock = demo.hold_lock()
            state["tmpdir"] = str(temporary)
            demo.save_state(state)
            log(
                f"databases {demo.sda_database}, {demo.dagster_database}; roles {demo.dagster_role}, "
                f"{demo.sda_role} (the SDA's sync grants); vhost {demo.vhost}, user {demo.broker_user}"
            )
            log(f"S3 sync storage at {s3_endpoint}; stand-in remote sync API at {remote.url}")
            first, first_files = seed_dataset(demo, admin, state)
            step(3, total, f"syncing {first} by hand, with bpsync sync")
            first_run = run_bpsync_sync(demo, temporary, first, first_files)
            if not verify(demo, state, first):
                raise DemoError(f"{first}: a synced object differs from its original")
            step(4, total, f"starting the Dagster webserver and daemon (logs in {shown(demo.logs)})")
            environment = service_environment(demo, temporary)
            for service in services:
                service.start(demo, environment)
            state["pids"] = {service.program: service.process.pid for service in services if service.process}
            demo.save_state(state)
            wait_for_ui(demo, services)
            step(5, total, "syncing a dataset by message: the sensor dataset_mapping_sensor starts its run")
            second, second_files = seed_dataset(demo, admin, state)
            publish_mapping(demo, admin, second, second_files)
            second_run = wait_for_run(demo, second, services)
            if second_run["status"] != "SUCCESS" or not verify(demo, state, second):
                raise DemoError(
                    f"{second}: its run {second_run['runId']} ended {second_run['status']}: see {demo.ui}/runs"
                )
            summary(
                demo,
                state,
                [(first, "bpsync sync", first_run), (second, "dataset_mapping_sensor", second_run["runId"])],
                started,
            )
            if exit_when_synced:
                return 0
            verified = {first, second}
            while True:
                check_running(demo, services)
                for manifest in remote.received:
                    dataset_id = manifest["dataset_id"]
                    if dataset_id not in verified:
                        verified.add(dataset_id)
                        log(f"the remote sync API received the manifest of {dataset_id}")
                        verify(demo, state, dataset_id)
                time.sleep(1)
    except Stop as stop:
        log(f"{stop}: stopping")
        return 0
    except DemoError as error:
        log(f"error: {error}")
        return 1
    finally:
        for service in services:
            service.stop()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(temporary, ignore_errors=True)
        if lock is not None:
            lock.close()
            log(
                f"stopped. The node stays under {shown(demo.directory)} and in its databases and vhost: "
                f"./scripts/demo clean{options(demo)} removes them"
            )


def publish(demo: Demo) -> int:
    """Seed and publish the next dataset to the demo that serves from `demo.directory`; wait for its run."""
    if demo.serving_pid() is None:
        log(
            f"error: no demo serves from {shown(demo.directory)} (stopped, or never started): "
            f"start one with ./scripts/demo{options(demo)}"
        )
        return 1
    admin = Admin.from_environment()
    state = demo.state()
    demo = Demo(demo.directory, state["name"], int(state["port"]))
    dataset_id, accession_ids = seed_dataset(demo, admin, state)
    publish_mapping(demo, admin, dataset_id, accession_ids)
    run = wait_for_run(demo, dataset_id, [])
    log(f"{dataset_id}: run {run['runId']} ended {run['status']}: {demo.ui}/runs/{run['runId']}")
    return 0 if run["status"] == "SUCCESS" else 1


def clean(demo: Demo) -> int:
    """Remove the demo's directory, databases, roles, vhost and RabbitMQ user."""
    pid = demo.serving_pid()
    if pid is not None:
        log(
            f"error: a demo serves from {shown(demo.directory)} (pid {pid}): stop it first (Ctrl-C, or kill -TERM {pid})"
        )
        return 1
    if not is_demo_directory(demo.directory):
        log(f"error: {demo.directory} is not a demo directory: nothing removed")
        return 1
    admin = Admin.from_environment()
    check_postgres(admin)
    check_names(demo, admin)
    rabbitmqctl("list_vhosts")
    removed = []
    databases = {row[0] for row in admin.query("SELECT datname FROM pg_database")}
    for database in (demo.sda_database, demo.dagster_database):
        if database in databases:
            admin.sql(f"DROP DATABASE {database} WITH (FORCE)")
            removed.append(f"database {database}")
    roles = {row[0] for row in admin.query("SELECT rolname FROM pg_roles")}
    for role in (demo.sda_role, demo.dagster_role):
        if role in roles:
            admin.sql(f"DROP ROLE {role}")
            removed.append(f"role {role}")
    if demo.vhost in rabbitmqctl("list_vhosts").split():
        rabbitmqctl("delete_vhost", demo.vhost)
        removed.append(f"vhost {demo.vhost}")
    if demo.broker_user in user_names():
        rabbitmqctl("delete_user", demo.broker_user)
        removed.append(f"RabbitMQ user {demo.broker_user}")
    if demo.state_file.exists():
        temporary = Path(demo.state().get("tmpdir") or "")
        if temporary.name.startswith(f"{demo.name}-") and temporary.is_dir():
            shutil.rmtree(temporary)
            removed.append(f"temporary directory {temporary}")
    if demo.directory.exists():
        shutil.rmtree(demo.directory)
        removed.append(f"directory {shown(demo.directory)}")
    log(f"removed {', '.join(removed)}" if removed else "nothing of the demo was left")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve", "publish", "clean"], default="serve")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port of the Dagster UI (default {DEFAULT_PORT})"
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the demo's directory (default: .demo)")
    parser.add_argument(
        "--name",
        default=DEFAULT_NAME,
        help=f"prefix of the demo's databases, roles, vhost and RabbitMQ user (default {DEFAULT_NAME})",
    )
    parser.add_argument("--exit-when-synced", action="store_true", help="stop once the second dataset is synced")
    arguments = parser.parse_args()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", arguments.name):
        parser.error("--name: lower-case letters, digits and _, starting with a letter, at most 40")
    demo = Demo(arguments.dir.absolute(), arguments.name, arguments.port)
    try:
        if arguments.command == "publish":
            return publish(demo)
        if arguments.command == "clean":
            return clean(demo)
        return serve(demo, arguments.exit_when_synced)
    except DemoError as error:
        log(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
