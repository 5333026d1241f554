"""A private RabbitMQ node for tests that stop and start the broker.

The machine's shared RabbitMQ (`rabbit@localhost` on 127.0.0.1:5672) is never touched: this node has
its own name, AMQP and distribution ports, Erlang cookie, and mnesia/log/config directories, and it
reads none of the files under /etc/rabbitmq. It runs `/usr/lib/rabbitmq/bin/rabbitmq-server`
directly (not the `/usr/sbin` wrapper: that one cds to /var/lib/rabbitmq and, for root, `su`s to the
`rabbitmq` user, which resets HOME and so would pick up the shared node's Erlang cookie), as whichever
user runs the tests, so everything it writes lives under `directory`.

Start-up is dominated by the Erlang VM loading (JIT-compiling) every module of every loaded
application to scan boot-step attributes (several seconds on a small machine). To keep that short
the node sees a plugins directory holding only `rabbit` and its dependencies (symlinks), so no
plugin (management, MQTT, ...) can be enabled, and no plugin's config schema is parsed.

Data survives `stop()` / `start()`: the same mnesia directory is reused, so durable queues, streams
and persistent messages are still there after a restart.
"""

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from types import TracebackType

import pika
import pika.exceptions

from bpsync_dagster_tests.support.ports import free_port, port_open
from bpsync_dagster_tests.support.rabbitmq import SERVICE_PASSWORD, SERVICE_PERMISSIONS, SERVICE_USER

SERVER_SCRIPTS = (
    Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),
    *sorted(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/sbin/rabbitmq-server")),
)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

# Every variable the RabbitMQ scripts or `rabbit_env` would read from the environment; none may leak
# in from the test process (e.g. a NODENAME pointing at the shared node).
_INHERITED_PREFIXES = ("RABBITMQ_", "ERL_", "NODENAME", "NODE_PORT", "CONFIG_FILE", "CONF_ENV_FILE", "HOME")

_CONFIG = """\
# Private test node: loopback only, no plugins, quiet logs, no clustering.
listeners.tcp.local = 127.0.0.1:{port}
loopback_users.guest = true
log.console = false
log.file.level = {log_level}
# Tests run on a shared machine: do not block publishers when the disk is fuller than usual.
disk_free_limit.absolute = 1MB
vm_memory_high_watermark.relative = 0.9
cluster_formation.peer_discovery_backend = classic_config
# guest as administrator, and the service's user with the SDA's permissions.
definitions.import_backend = local_filesystem
definitions.local.path = {definitions}
"""


def _password_hash(password: str) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: a 4-byte salt, then sha256(salt + password)."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _definitions() -> str:
    users = [
        ("guest", "guest", "administrator", (".*", ".*", ".*")),
        (SERVICE_USER, SERVICE_PASSWORD, "", SERVICE_PERMISSIONS),
    ]
    return json.dumps(
        {
            "vhosts": [{"name": "/"}],
            "users": [
                {
                    "name": name,
                    "password_hash": _password_hash(password),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": tags,
                }
                for name, password, tags, _ in users
            ],
            "permissions": [
                {"user": name, "vhost": "/", "configure": configure, "write": write, "read": read}
                for name, _, _, (configure, write, read) in users
            ],
        }
    )


def _server_script() -> Path:
    for script in SERVER_SCRIPTS:
        if script.exists():
            return script
    raise RuntimeError(f"no RabbitMQ server script found at {', '.join(map(str, SERVER_SCRIPTS))}")


def _link_core_applications(plugins: Path, target: Path) -> bool:
    """Symlink `rabbit` and the applications it needs (from the `.app` files) into `target`."""
    applications: dict[str, tuple[Path, list[str]]] = {}
    for directory in plugins.iterdir():
        name = directory.name.rsplit("-", 1)[0]
        app_file = directory / "ebin" / f"{name}.app"
        if directory.is_dir() and app_file.exists():
            found = re.search(r"\{applications,\s*\[([^\]]*)\]", app_file.read_text())
            needs = [item.strip() for item in found.group(1).split(",") if item.strip()] if found else []
            applications[name] = (directory, needs)
    if "rabbit" not in applications:
        return False
    wanted, pending = set(), ["rabbit"]
    while pending:
        name = pending.pop()
        if name not in wanted and name in applications:  # OTP applications (kernel, ssl, ...) are not here
            wanted.add(name)
            pending.extend(applications[name][1])
    target.mkdir(exist_ok=True)
    for name in wanted:
        link = target / applications[name][0].name
        if not link.exists():
            link.symlink_to(applications[name][0])
    return True


class PrivateRabbitMQ:
    """A RabbitMQ node of its own under `directory`; `with PrivateRabbitMQ(tmp_path) as broker:` starts it."""

    def __init__(self, directory: Path, *, start: bool = True, log_level: str = "warning") -> None:
        self.directory = Path(directory)
        self.node_name = f"bpsync-{secrets.token_hex(4)}@localhost"
        self._port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self._port:
            self.dist_port = free_port()
        self._start_on_enter = start
        self._log_level = log_level
        self._plugins_dir: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        self._prepare_directories()

    # -- public API ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self._port}/%2F"

    def connection_parameters(self, **options: object) -> pika.ConnectionParameters:
        return pika.ConnectionParameters(
            "127.0.0.1", self._port, credentials=pika.PlainCredentials("guest", "guest"), **options
        )

    def connection(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.connection_parameters())

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT, *, queues: Iterable[str] = ()) -> None:
        """Start the node and return once it accepts AMQP connections and `queues` are available.

        A stream (or quorum queue) declared before a restart is not there yet when the listener
        opens: until its Ra leader is elected (a few hundred ms later) a passive declare answers
        404 "home node ... is down" and a publish to it is unroutable. Name such queues in `queues`.
        """
        if self.running:
            self.wait_for_queues(*queues, timeout=timeout)
            return
        if port_open(self._port):
            raise RuntimeError(f"port {self._port} is taken by another process; cannot start {self.node_name}")
        began = time.monotonic()
        self._log_file = open(self.log_dir / "server-output.log", "ab")
        self._process = subprocess.Popen(
            [str(_server_script())],
            cwd=self.directory,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cleanup kills this node's processes only
        )
        try:
            self._wait_until_accepting(began + timeout)
        except BaseException:
            self._terminate()
            raise
        self.wait_for_queues(*queues, timeout=max(1.0, began + timeout - time.monotonic()))
        self.last_start_seconds = time.monotonic() - began

    def wait_for_queues(self, *names: str, timeout: float = 30.0) -> None:
        """Wait until each queue answers a passive declare (a recovering stream answers 404 "is down")."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            try:
                with closing(self.connection()) as connection:
                    while pending:
                        connection.channel().queue_declare(pending[0], passive=True)
                        pending.pop(0)
            except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.AMQPConnectionError) as error:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queue {pending[0]!r} on {self.node_name} is not available: {error}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the node gracefully (SIGTERM, as `rabbitmqctl stop` would) and wait until its port is closed."""
        if self._process is None:
            return
        began = time.monotonic()
        if self._process.poll() is None:
            # The rabbitmq-server script traps TERM and forwards it to the VM, which shuts RabbitMQ down cleanly.
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._terminate()
        deadline = time.monotonic() + timeout
        while port_open(self._port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node_name} still listens on {self._port} after stop")
            time.sleep(0.05)
        self.last_stop_seconds = time.monotonic() - began

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._kill_leftovers()

    def log_tail(self, lines: int = 40) -> str:
        chunks = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def __enter__(self) -> "PrivateRabbitMQ":
        if self._start_on_enter:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    def _prepare_directories(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in ("mnesia", "log", "home", "plugins-expand"):
            (self.directory / name).mkdir(exist_ok=True)
        definitions = self.directory / "definitions.json"
        definitions.write_text(_definitions())
        (self.directory / "rabbitmq.conf").write_text(
            _CONFIG.format(port=self._port, log_level=self._log_level, definitions=definitions)
        )
        plugins = _server_script().resolve().parent.parent / "plugins"
        if plugins.is_dir() and _link_core_applications(plugins, self.directory / "plugins"):
            self._plugins_dir = self.directory / "plugins"
        (self.directory / "rabbitmq-env.conf").write_text("# private test node: nothing from /etc/rabbitmq\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        # A cookie of its own: this node cannot talk to (or be joined to) the shared rabbit@localhost.
        cookie = self.directory / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)

    def _environment(self) -> dict[str, str]:
        base = {key: value for key, value in os.environ.items() if not key.startswith(_INHERITED_PREFIXES)}
        directory = self.directory
        return {
            **base,
            "HOME": str(directory / "home"),  # Erlang reads the cookie from $HOME/.erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_CONFIG_FILES": str(directory / "conf.d"),  # absent: no extra config files
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),  # absent
            "RABBITMQ_NODENAME": self.node_name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self._port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_PID_FILE": str(directory / "rabbitmq.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_ENABLED_PLUGINS": "",
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(directory / "plugins-expand"),
            "RABBITMQ_MOTD_FILE": str(directory / "motd"),  # absent
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            **({"RABBITMQ_PLUGINS_DIR": str(self._plugins_dir)} if self._plugins_dir else {}),
        }

    def _wait_until_accepting(self, deadline: float) -> None:
        parameters = self.connection_parameters(connection_attempts=1, socket_timeout=2, blocked_connection_timeout=2)
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.node_name} exited with {self._process.returncode} while starting\n{self.log_tail()}"
                )
            if port_open(self._port):
                try:
                    pika.BlockingConnection(parameters).close()
                    return
                except (pika.exceptions.AMQPError, OSError):
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node_name} did not accept AMQP on {self._port} in time\n{self.log_tail()}")
            time.sleep(0.1)

    def _terminate(self) -> None:
        """Kill what is left of this node's process group and reap the script."""
        if self._process is not None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _kill_leftovers(self) -> None:
        """Kill any process still carrying this node's name in its environment (never another node's)."""
        marker = f"RABBITMQ_NODENAME={self.node_name}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass


__all__ = ["PrivateRabbitMQ"]

if __name__ == "__main__":  # pragma: no cover - manual check: python -m ...private_rabbitmq
    import tempfile

    with tempfile.TemporaryDirectory() as scratch, PrivateRabbitMQ(Path(scratch)) as broker:
        print(broker.node_name, broker.amqp_url, f"started in {broker.last_start_seconds:.2f}s")
        broker.stop()
        print(f"stopped in {broker.last_stop_seconds:.2f}s")
        broker.start()
        print(f"restarted in {broker.last_start_seconds:.2f}s")
