"""A private PostgreSQL cluster for tests that stop, restart, kill or reconfigure the database.

The machine's shared PostgreSQL (127.0.0.1:5432) holds Dagster's own storage and is never touched:
this cluster is made with `initdb` from the newest /usr/lib/postgresql/<version>/bin, listens on
127.0.0.1 on a free port (no Unix socket) and accepts every local connection as any user (trust)
unless `hba_lines` say otherwise.

initdb and postgres refuse to run as root, so both run as the `postgres` OS user (the postmaster is
a direct child of the test process, in a process group of its own, so signals reach it and its
backends only). A test's `tmp_path` lies under /tmp/pytest-of-root, which only root may enter, so
the data directory itself is a fresh directory under /tmp owned by postgres, linked from
`directory/data`; the server's output goes to `directory/postgres.log`. Files the server must read
(an SSL certificate and key, say) go into the data directory with `install_file`, which returns the
name to put in `settings` (relative names resolve against the data directory).

Start-up is fast: no fsync (a killed server loses nothing committed: WAL is written at commit,
just not flushed to disk), a small shared_buffers, and a cluster is made once per process and
copied for every further instance.
"""

import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import closing
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2

from bpsync_dagster_tests.support.ports import free_port, port_open

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SERVER_USER = "postgres"

_FAST_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "60",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "dynamic_shared_memory_type": "posix",
}
_TRUST_HBA = ["host all all 127.0.0.1/32 trust", "host all all ::1/128 trust"]
_template_cluster: Path | None = None


def postgres_bin_directory() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3].split(".")[0])
    )
    if not candidates:
        raise RuntimeError("no PostgreSQL server found under /usr/lib/postgresql/*/bin")
    return candidates[-1].parent


def _server_user_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path) -> None:
    uid, gid = _server_user_ids()
    os.chown(path, uid, gid)
    for root, directories, files in os.walk(path):
        for name in [*directories, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _as_server_user(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        user=SERVER_USER,
        group=SERVER_USER,
        env=_server_environment(),
        capture_output=True,
        text=True,
        **options,
    )


def _server_environment() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp"}


def _new_server_directory() -> Path:
    """An empty directory under /tmp that the postgres user owns (mode 0700, as postgres requires)."""
    path = Path(tempfile.mkdtemp(prefix="bpsync-private-postgres-", dir="/tmp"))
    uid, gid = _server_user_ids()
    os.chown(path, uid, gid)
    path.chmod(0o700)
    return path


def _template() -> Path:
    """One initdb per process; every cluster starts as a copy of it."""
    global _template_cluster
    if _template_cluster is None or not (_template_cluster / "PG_VERSION").exists():
        directory = _new_server_directory()
        result = _as_server_user(
            [
                str(postgres_bin_directory() / "initdb"),
                "--pgdata",
                str(directory),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        _template_cluster = directory
        atexit.register(shutil.rmtree, directory, True)
    return _template_cluster


class PrivatePostgres:
    """A PostgreSQL cluster of its own; `with PrivatePostgres(tmp_path / "pg") as database:` starts it."""

    def __init__(
        self, directory: Path, settings: dict[str, str] | None = None, hba_lines: list[str] | None = None
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        uid, gid = _server_user_ids()
        os.chown(self.directory, uid, gid)
        self.data_directory = _new_server_directory()
        shutil.copytree(_template(), self.data_directory, dirs_exist_ok=True, symlinks=True)
        _chown_tree(self.data_directory)
        link = self.directory / "data"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.data_directory)
        self._port = free_port()
        self._settings = settings or {}
        self._hba_lines = _TRUST_HBA if hba_lines is None else list(hba_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self.last_start_seconds: float | None = None
        self._write_configuration()

    @property
    def port(self) -> int:
        return self._port

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self._port} user=postgres dbname={database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run `sql` as the superuser, autocommit (CREATE DATABASE works); the rows it returns, if any."""
        with closing(psycopg2.connect(self.dsn(database), connect_timeout=5)) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description is not None else []

    def install_file(self, source: Path, name: str | None = None, mode: int = 0o600) -> str:
        """Copy `source` into the data directory, owned by postgres; the name for a setting's value."""
        name = name or Path(source).name
        target = self.data_directory / name
        shutil.copyfile(source, target)
        uid, gid = _server_user_ids()
        os.chown(target, uid, gid)
        target.chmod(mode)
        return name

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the postmaster and return once it accepts connections (after crash recovery, if any)."""
        if self.running:
            return
        if port_open(self._port):
            raise RuntimeError(f"port {self._port} is taken by another process; cannot start PostgreSQL")
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(postgres_bin_directory() / "postgres"), "-D", str(self.data_directory)],
                user=SERVER_USER,
                group=SERVER_USER,
                env=_server_environment(),
                cwd=self.data_directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_accepting(began + timeout)
        except BaseException:
            self.kill()
            raise
        self.last_start_seconds = time.monotonic() - began

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """A fast shutdown (SIGINT: sessions are disconnected, a checkpoint written); the data survives."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and its backends; the next start() runs crash recovery."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        self._process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.data_directory, ignore_errors=True)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "PrivatePostgres":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self.remove()

    def _write_configuration(self) -> None:
        lines = [f"{key} = {value}" for key, value in {**_FAST_SETTINGS, "port": str(self._port)}.items()]
        lines += [f"{key} = {value}" for key, value in self._settings.items()]
        (self.data_directory / "postgresql.auto.conf").write_text("\n".join(lines) + "\n")
        (self.data_directory / "pg_hba.conf").write_text("\n".join(self._hba_lines) + "\n")
        uid, gid = _server_user_ids()
        for name in ("postgresql.auto.conf", "pg_hba.conf"):
            os.chown(self.data_directory / name, uid, gid)

    def _wait_until_accepting(self, deadline: float) -> None:
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with status {self._process.returncode}: {self.log()[-2000:]}")
            result = _as_server_user(
                [str(postgres_bin_directory() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self._port), "-t", "1"]
            )
            if result.returncode == 0:
                return
            last_error = RuntimeError(result.stdout.strip())
            time.sleep(0.05)
        raise TimeoutError(f"PostgreSQL on port {self._port} did not accept connections: {last_error}")
