"""Ceph's RADOS Gateway as a real S3 endpoint for tests, benchmarks and people.

A single-node Ceph cluster lives under one directory: one monitor, one OSD on the in-memory
`memstore` backend (its data is lost when the OSD is killed; a clean stop saves it, so a restart
finds it again), and radosgw with the beast frontend, all on 127.0.0.1, without cephx, systemd or
a manager daemon. The daemons are child processes in sessions of their own, stopped by PID
(SIGTERM, SIGKILL after a grace period), and by default also sent SIGTERM when the process that
started them dies (a killed test session leaves none behind). Their PIDs and ports are kept in
`DIR/state.json`, so a gateway started by one process (the command below) can be stopped by another:

    scripts/radosgw start --dir DIR [--tls]   # prints endpoint and keys
    scripts/radosgw stop --dir DIR

With `tls`, radosgw also serves HTTPS on a second port with a certificate for 127.0.0.1 and
localhost signed by a test CA (`DIR/tls/ca.crt`); `https()` is that endpoint. `RadosGateway` and
`https()` have the interface of the tests' moto `S3Server`.

Ports: radosgw's HTTP port P, the monitor P+1, the OSD's messenger P+2..P+20, HTTPS P+21, all in a
block below the kernel's ephemeral range. Three settings matter beyond the obvious: with auth
`none` the daemons still ask the monitor for a `secure` (cephx) connection unless
`ms mon * mode` allows `crc`; without `mon cluster log file` the monitor writes to /var/log/ceph;
and `mon data avail warn` must be low on a busy disk.
"""

import argparse
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bpsync_dagster_tests.support.lifecycle import StartedService
from bpsync_dagster_tests.support.ports import free_port_block, port_open
from bpsync_dagster_tests.support.s3_server import ACCESS_KEY, SECRET_KEY, s3_client
from bpsync_dagster_tests.support.tls import make_tls_files

DAEMONS = ("mon", "osd", "rgw")  # in start order; stopped in reverse
PORTS = 22
DEVICE_BYTES = 2 * 1024**3
START_TIMEOUT = 120.0
STOP_GRACE = 30.0
CEPH_COMMAND_TIMEOUT = 30.0
UNIX_SOCKET_PATH_MAX = 107
STATE_FILE = "state.json"
USER = "bpsync-tests"
PR_SET_PDEATHSIG = 1

_CONFIG = """\
[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
ms bind port min = {osd_port_min}
ms bind port max = {osd_port_max}
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms mon cluster mode = crc secure
ms mon service mode = crc secure
auth allow insecure global id reclaim = false
run dir = {dir}/run
crash dir = {dir}/crash
keyring = {dir}/keyring
log file = {dir}/log/$name.log
admin socket = {dir}/run/$name.$pid.asok
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mon cluster log file = default={dir}/log/mon.$channel.log cluster={dir}/log/cluster.log
client mount timeout = 30

[mon]
mon data = {dir}/mon
admin socket = {dir}/run/$name.asok

[osd]
osd data = {dir}/osd
osd objectstore = memstore
memstore device bytes = {device_bytes}
osd fast shutdown = false
admin socket = {dir}/run/$name.asok

[client.rgw.a]
rgw frontends = {frontends}
rgw data = {dir}/rgw
# Deleted and overwritten objects hold memory until garbage collection: collect often.
rgw gc obj min wait = 10
rgw gc processor period = 10
admin socket = {dir}/run/$name.asok
"""


class RadosGatewayError(RuntimeError):
    """The cluster could not be made, started or stopped; the message says which daemon and its log."""


class RadosGateway(StartedService):
    """A single-node Ceph cluster with a RADOS Gateway under `directory`; `with RadosGateway(d):`
    starts and stops it. `start()` after `stop()` brings it back on the same ports with its data."""

    name = "radosgw"
    ca_certificate: Path | None = None  # of the HTTP endpoint: none; see `https()`

    def __init__(
        self,
        directory: Path,
        *,
        tls: bool = False,
        device_bytes: int = DEVICE_BYTES,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        outlive_this_process: bool = False,
    ) -> None:
        """`outlive_this_process`: the daemons keep running when the process (precisely: the thread)
        that started them ends, e.g. a killed test session; by default they get SIGTERM then."""
        self.directory = Path(directory).resolve()
        self._outlive = outlive_this_process
        self.access_key = access_key
        self.secret_key = secret_key
        self._tls = tls
        self._device_bytes = device_bytes
        self._port = 0
        self._made = False  # the cluster, its pools and the S3 user exist
        self._lost = False  # the OSD was killed, and its objects with it
        self._pids: dict[str, int] = {}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self.last_start_seconds: float | None = None
        self.last_stop_seconds: float | None = None
        longest = self.directory / "run" / "client.rgw.a.asok"
        if len(str(longest)) > UNIX_SOCKET_PATH_MAX:
            raise RadosGatewayError(f"{self.directory} is too long a path for Ceph's admin sockets ({longest})")

    @classmethod
    def attach(cls, directory: Path, *, outlive_this_process: bool = False) -> "RadosGateway":
        """The gateway whose `state.json` is in `directory` (started by another process)."""
        path = Path(directory).resolve() / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise RadosGatewayError(f"{path} does not exist: no gateway was started in {directory}") from None
        gateway = cls(
            Path(directory),
            tls=state["tls"],
            device_bytes=state["device_bytes"],
            access_key=state["access_key"],
            secret_key=state["secret_key"],
            outlive_this_process=outlive_this_process,
        )
        gateway._port = state["port"]
        gateway._made = state["made"]
        gateway._lost = state["lost"]
        gateway._pids = {name: int(pid) for name, pid in state["pids"].items()}
        return gateway

    # -- the S3Server interface ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """radosgw's HTTP port, fixed once the gateway has started the first time."""
        return self._port

    @property
    def tls(self) -> bool:
        """Whether it also serves HTTPS (`https()`)."""
        return self._tls

    @property
    def tls_port(self) -> int:
        return self._port + PORTS - 1

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def tls_ca_certificate(self) -> Path:
        """The CA that signed the HTTPS endpoint's certificate."""
        return self.directory / "tls" / "ca.crt"

    def client(self) -> BaseClient:
        """A boto3 S3 client for the HTTP endpoint (path-style)."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def https(self) -> "RadosGatewayOverTls":
        """The same gateway, over HTTPS (it must be made with `tls=True`)."""
        if not self._tls:
            raise RadosGatewayError("this gateway serves no HTTPS: make it with tls=True")
        return RadosGatewayOverTls(self)

    def start(self) -> None:
        """Make the cluster on the first start; start the daemons; return once a signed request is answered.

        Nothing happens if it runs; what a half-finished earlier start left running is stopped first.
        """
        if self._pids and all(self._alive(name) for name in DAEMONS):
            return
        self.stop()
        if self._lost:
            raise RadosGatewayError(
                f"the OSD in {self.directory} was killed at its last stop, and its objects with it: "
                "start a gateway in an empty directory"
            )
        began = time.monotonic()
        deadline = began + START_TIMEOUT
        made = self._made
        try:
            if not made:
                self._make()
            self._spawn("mon", ["ceph-mon", "-i", "a"])
            self._wait_for_quorum(deadline)
            if not made:
                self._make_osd()
            self._spawn("osd", ["ceph-osd", "-i", "0"])
            self._wait_for_osd(deadline)
            self._spawn("rgw", ["radosgw", "-n", "client.rgw.a"])
            self._wait(lambda: port_open(self._port), deadline, "radosgw to listen", "rgw")
            if not made:
                self._create_user()
            self._wait(self._answers, deadline, "a signed ListBuckets to succeed", "rgw")
            if not made:
                self._create_data_pools()
        except BaseException:
            self.stop()
            raise
        self._made = True
        self._save_state()
        self.last_start_seconds = time.monotonic() - began

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM to radosgw, the OSD and the monitor in turn, SIGKILL to one that outlives `grace`."""
        began = time.monotonic()
        for name in reversed(DAEMONS):
            if name in self._pids:
                self._terminate(name, grace)
        self._save_state()
        self.last_stop_seconds = time.monotonic() - began

    def collect_garbage(self) -> None:
        """Free the memory of deleted objects now, not at the next garbage collection (every 10 s)."""
        self._run(["radosgw-admin", "-c", str(self.config_path), "gc", "process", "--include-all"])

    # -- making the cluster -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "ceph.conf"

    def _make(self) -> None:
        if self.directory.exists() and any(self.directory.iterdir()):
            raise RadosGatewayError(f"{self.directory} is not empty and holds no complete gateway: remove it first")
        for name in ("mon", "osd", "rgw", "run", "log", "crash"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        self._port = free_port_block(PORTS)
        frontends = f"beast endpoint=127.0.0.1:{self._port}"
        if self._tls:
            files = make_tls_files(self.directory / "tls")
            frontends += (
                f" ssl_endpoint=127.0.0.1:{self.tls_port}"
                f" ssl_certificate={files.server.certificate} ssl_private_key={files.server.key}"
            )
        fsid = str(uuid.uuid4())
        self.config_path.write_text(
            _CONFIG.format(
                fsid=fsid,
                mon_port=self._port + 1,
                osd_port_min=self._port + 2,
                osd_port_max=self._port + PORTS - 2,
                dir=self.directory,
                device_bytes=self._device_bytes,
                frontends=frontends,
            )
        )
        monmap = self.directory / "monmap"
        self._run(
            ["monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{self._port + 1}]", str(monmap)]
        )
        self._run(["ceph-mon", "-c", str(self.config_path), "--mkfs", "-i", "a", "--monmap", str(monmap)])

    def _make_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        number = self._ceph("osd", "new", osd_uuid).strip()
        if number != "0":
            raise RadosGatewayError(f"`ceph osd new` gave OSD {number!r}, not 0")
        self._run(["ceph-osd", "-c", str(self.config_path), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid])

    def _create_user(self) -> None:
        self._run(
            [
                "radosgw-admin",
                "-c",
                str(self.config_path),
                "user",
                "create",
                f"--uid={USER}",
                f"--display-name={USER}",
                f"--access-key={self.access_key}",
                f"--secret-key={self.secret_key}",
            ],
            secret=True,
        )

    def _create_data_pools(self) -> None:
        """Write and remove one object: radosgw creates its data pools at the first write (seconds, while
        the new placement groups peer), which would otherwise slow whichever test or tool writes first."""
        client = self.client()
        bucket = "bpsync-first-write"
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="first", Body=b"first")
            client.delete_object(Bucket=bucket, Key="first")
            client.delete_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as error:
            raise RadosGatewayError(f"the first write to radosgw failed: {error}") from None

    # -- processes ----------------------------------------------------------------------------------

    @staticmethod
    def _environment() -> dict[str, str]:
        """Nothing of the caller's Ceph or Python settings reaches the daemons and the `ceph` command."""
        return {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("CEPH_") and key not in ("PYTHONPATH", "PYTHONHOME")
        }

    def _run(self, command: list[str], *, secret: bool = False) -> str:
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=CEPH_COMMAND_TIMEOUT,
                env=self._environment(),
                cwd=self.directory,
            )
        except subprocess.TimeoutExpired:
            raise RadosGatewayError(
                f"`{command[0]} {command[1]}...` did not finish in {CEPH_COMMAND_TIMEOUT} s"
            ) from None
        if result.returncode != 0:
            shown = command[0] if secret else shlex.join(command)
            raise RadosGatewayError(f"`{shown}` exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def _ceph(self, *arguments: str) -> str:
        return self._run(["ceph", "-c", str(self.config_path), "--connect-timeout", "10", *arguments])

    def _spawn(self, name: str, command: list[str]) -> None:
        with (self.directory / "log" / f"{name}.out").open("ab") as output:
            process = subprocess.Popen(
                [*command, "-c", str(self.config_path), "-f"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                cwd=self.directory,
                start_new_session=True,
                preexec_fn=None if self._outlive else _terminated_with_parent,
            )
        self._processes[name] = process
        self._pids[name] = process.pid
        self._save_state()

    def _save_state(self) -> None:
        if not self._port:
            return
        path = self.directory / STATE_FILE
        path.touch(mode=0o600)
        path.write_text(
            json.dumps(
                {
                    "port": self._port,
                    "tls": self._tls,
                    "made": self._made,
                    "lost": self._lost,
                    "device_bytes": self._device_bytes,
                    "access_key": self.access_key,
                    "secret_key": self.secret_key,
                    "pids": self._pids,
                },
                indent=1,
            )
        )

    def _alive(self, name: str) -> bool:
        process = self._processes.get(name)
        if process is not None:
            return process.poll() is None
        pid = self._pids.get(name)
        return pid is not None and _is_daemon_of(pid, self.config_path)

    def _gone_within(self, name: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive(name):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _terminate(self, name: str, grace: float) -> None:
        pid = self._pids[name]
        try:
            if self._alive(name):
                os.kill(pid, signal.SIGTERM)
                if not self._gone_within(name, grace):
                    os.kill(pid, signal.SIGKILL)
                    self._lost = self._lost or name == "osd"
                    self._gone_within(name, STOP_GRACE)
        except ProcessLookupError:
            pass
        del self._pids[name]
        self._processes.pop(name, None)

    # -- readiness ----------------------------------------------------------------------------------

    def _wait(self, condition, deadline: float, what: str, daemon: str) -> None:
        while True:
            for name in DAEMONS:
                if name in self._pids and not self._alive(name):
                    raise RadosGatewayError(f"ceph {name} exited while waiting for {what}: {self._log_tail(name)}")
            if condition():
                return
            if time.monotonic() > deadline:
                raise RadosGatewayError(f"timed out waiting for {what}: {self._log_tail(daemon)}")
            time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        logs = {"mon": "mon.a.log", "osd": "osd.0.log", "rgw": "client.rgw.a.log"}
        lines: list[str] = []
        for path in (self.directory / "log" / f"{name}.out", self.directory / "log" / logs[name]):
            if path.exists():
                lines += [f"{path.name}: {line}" for line in path.read_text(errors="replace").splitlines()[-5:]]
        return "\n".join(lines) or f"no log in {self.directory / 'log'}"

    def _status(self, *arguments: str) -> dict | None:
        try:
            return json.loads(self._ceph(*arguments, "--format", "json"))
        except (RadosGatewayError, json.JSONDecodeError):
            return None

    def _wait_for_quorum(self, deadline: float) -> None:
        def in_quorum() -> bool:
            status = self._status("quorum_status")
            return status is not None and "a" in status.get("quorum_names", [])

        self._wait(in_quorum, deadline, "the monitor's quorum", "mon")

    def _wait_for_osd(self, deadline: float) -> None:
        def osd_up() -> bool:
            status = self._status("osd", "dump")
            return status is not None and any(osd["osd"] == 0 and osd["up"] == 1 for osd in status.get("osds", []))

        self._wait(osd_up, deadline, "osd.0 to be up", "osd")

    def _answers(self) -> bool:
        endpoints = [self, self.https()] if self._tls else [self]
        for endpoint in endpoints:
            try:
                endpoint.client().list_buckets()
            except (BotoCoreError, ClientError):
                return False
        return True


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the forked child only calls it


def _terminated_with_parent() -> None:
    """In a daemon, before it runs: SIGTERM when the thread that started it ends."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _is_daemon_of(pid: int, config_path: Path) -> bool:
    """Whether `pid` runs (not a zombie) with `config_path` on its command line: a daemon of that
    cluster, not a process that was given its PID later."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and str(config_path).encode() in command_line.split(b"\0")


class RadosGatewayOverTls:
    """A `RadosGateway` made with `tls=True`, seen through its HTTPS endpoint."""

    name = "radosgw-https"

    def __init__(self, gateway: RadosGateway) -> None:
        self.gateway = gateway

    @property
    def port(self) -> int:
        return self.gateway.tls_port

    @property
    def endpoint_url(self) -> str:
        return f"https://127.0.0.1:{self.gateway.tls_port}"

    @property
    def access_key(self) -> str:
        return self.gateway.access_key

    @property
    def secret_key(self) -> str:
        return self.gateway.secret_key

    @property
    def ca_certificate(self) -> Path:
        return self.gateway.tls_ca_certificate

    def client(self) -> BaseClient:
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.ca_certificate)

    def start(self) -> None:
        self.gateway.start()

    def stop(self) -> None:
        self.gateway.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/radosgw", description="A single-node Ceph cluster with a RADOS Gateway on 127.0.0.1."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="make (first time) and start the cluster; print endpoint and keys")
    start.add_argument("--dir", type=Path, required=True, help="the cluster's directory (made if missing)")
    start.add_argument("--tls", action="store_true", help="also serve HTTPS, with a test CA (DIR/tls/ca.crt)")
    start.add_argument("--memory-mib", type=int, default=DEVICE_BYTES // 1024**2, help="the OSD's capacity, in RAM")
    stop = commands.add_parser("stop", help="stop the daemons by PID; the data stays for the next start")
    stop.add_argument("--dir", type=Path, required=True)
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "stop":
            RadosGateway.attach(arguments.dir).stop()
            print(f"# stopped the cluster in {arguments.dir}", file=sys.stderr)
            return 0
        if (arguments.dir / STATE_FILE).exists():
            gateway = RadosGateway.attach(arguments.dir, outlive_this_process=True)
        else:
            gateway = RadosGateway(
                arguments.dir,
                tls=arguments.tls,
                device_bytes=arguments.memory_mib * 1024**2,
                outlive_this_process=True,
            )
        gateway.start()
    except RadosGatewayError as error:
        print(f"scripts/radosgw: {error}", file=sys.stderr)
        return 1
    lines = {
        "RGW_ENDPOINT": gateway.endpoint_url,
        "RGW_ACCESS_KEY": gateway.access_key,
        "RGW_SECRET_KEY": gateway.secret_key,
    }
    if gateway.tls:
        lines |= {"RGW_HTTPS_ENDPOINT": gateway.https().endpoint_url, "RGW_CA_CERT": str(gateway.tls_ca_certificate)}
    for key, value in lines.items():
        print(f"export {key}={shlex.quote(value)}")
    started = (
        "running already" if gateway.last_start_seconds is None else f"started in {gateway.last_start_seconds:.1f} s"
    )
    print(f"# {started}; stop it with: scripts/radosgw stop --dir {arguments.dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
