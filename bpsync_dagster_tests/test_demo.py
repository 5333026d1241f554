"""The README's demo, run as a second demo beside any the user serves: its own directory, databases,
roles, vhost, RabbitMQ user and port, all removed by `demo clean` at the end.

One demo is served to its summary (a dataset synced by `bpsync sync`, one by the sensor, every object
decrypted and compared), used through its env file and `publish`, stopped by SIGINT as a background
job receives it (with SIGINT ignored), and removed; a missing prerequisite stops it before it makes
anything, in one line that names what to set."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from bpsync_dagster_tests.support import sda_database
from bpsync_dagster_tests.support.environment import PROJECT_ROOT
from bpsync_dagster_tests.support.ports import free_port_block, port_open

DEMO = PROJECT_ROOT / "scripts" / "demo.py"
NAME = f"bpsync_demotest_{os.getpid()}"
SUMMARY_TIMEOUT_SECONDS = 600


def demo(*arguments: str, directory: Path, port: int | None = None) -> list[str]:
    options = ["--dir", str(directory), "--name", NAME] + (["--port", str(port)] if port else [])
    return [sys.executable, str(DEMO), *arguments, *options]


def leftovers() -> list[str]:
    """The test demo's databases, roles, vhost and RabbitMQ user that still exist."""
    found = []
    with closing(psycopg2.connect(sda_database.SERVER_DSN)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 'database ' || datname FROM pg_database WHERE datname LIKE %s", (f"{NAME}%",))
        found += [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE %s", (f"{NAME}%",))
        found += [row[0] for row in cursor.fetchall()]
    for kind in ("vhosts", "users"):
        listing = subprocess.run(["rabbitmqctl", "-q", f"list_{kind}"], capture_output=True, text=True, timeout=60)
        found += [f"{kind} {line.split()[0]}" for line in listing.stdout.splitlines() if line.startswith(NAME)]
    return found


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    """The test demo's directory; whatever a failed test left of the demo is removed afterwards."""
    path = tmp_path / "demo"
    yield path
    subprocess.run(demo("clean", directory=path), capture_output=True, timeout=120)


def wait_for_summary(process: subprocess.Popen[bytes], output: Path) -> str:
    deadline = time.monotonic() + SUMMARY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = output.read_text()
        if re.search(r"^\[demo\] stop: ", text, re.MULTILINE):
            return text
        assert process.poll() is None, f"the demo exited with status {process.returncode}:\n{text[-5000:]}"
        time.sleep(1)
    raise AssertionError(f"no summary after {SUMMARY_TIMEOUT_SECONDS} s:\n{output.read_text()[-5000:]}")


def env_file_variables(path: Path) -> dict[str, str]:
    sourced = subprocess.run(
        ["bash", "-c", f". {path} && env -0"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return dict(entry.split("=", 1) for entry in sourced.split("\0") if "=" in entry)


@pytest.mark.timeout(900)
def test_a_second_demo_serves_is_used_stops_on_sigint_in_the_background_and_leaves_nothing(
    directory: Path, tmp_path: Path
) -> None:
    port = free_port_block(1)
    output = tmp_path / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            demo(directory=directory, port=port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `demo &` in a script
        )
    try:
        text = wait_for_summary(process, output)
        assert text.count("decrypted with the receiver's key: ok") == 6, text
        assert re.search(r"SYNC-DEMO-0001 +by bpsync sync +run [0-9a-f]{8}", text), text
        assert re.search(r"SYNC-DEMO-0002 +by dataset_mapping_sensor +run [0-9a-f]{8}", text), text
        assert f"http://127.0.0.1:{port}/runs" in text
        for log in ("webserver.log", "daemon.log"):
            assert (directory / "logs" / log).stat().st_size > 0, log

        env_file = directory / "env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        (use,) = re.findall(r"^\[demo\] bpsync: +(\. \S+ && \S+ check)$", text, re.MULTILINE)
        check = subprocess.run(["bash", "-c", use], capture_output=True, text=True, timeout=120)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.count(": ok") >= 8, check.stdout

        # The service's role holds the SDA's sync grants only: files, but not datasets.
        variables = env_file_variables(env_file)
        login = f"host=127.0.0.1 port=5432 dbname={NAME}_sda user={NAME}_sync password={variables['DB_PASSWORD']}"
        with closing(psycopg2.connect(login)) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM sda.files")
                assert cursor.fetchone() == (6,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM sda.datasets")

        published = subprocess.run(demo("publish", directory=directory), capture_output=True, text=True, timeout=300)
        assert published.returncode == 0, published.stdout + published.stderr
        assert re.search(r"SYNC-DEMO-0003: run \S+ ended SUCCESS", published.stdout), published.stdout

        pids = [
            int(pid)
            for pid in re.findall(r'"dagster-(?:webserver|daemon)": (\d+)', (directory / "state.json").read_text())
        ]
        assert len(pids) == 2
        temporary = Path(json.loads((directory / "state.json").read_text())["tmpdir"])
        assert [path for path in temporary.iterdir() if path.is_socket()], "no code server socket in the demo's TMPDIR"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0, output.read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "SIGINT: stopping" in output.read_text()
    assert not port_open(port)
    assert not temporary.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    after_stop = subprocess.run(demo("publish", directory=directory), capture_output=True, text=True, timeout=120)
    assert after_stop.returncode == 1
    assert "no demo serves from" in after_stop.stdout, after_stop.stdout

    cleaned = subprocess.run(demo("clean", directory=directory), capture_output=True, text=True, timeout=120)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert not directory.exists()
    assert leftovers() == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BPSYNC_DEMO_POSTGRES", "host=127.0.0.1 port=5432 user=bpsync_demotest_no_such_role dbname=postgres"),
        ("BPSYNC_DEMO_RABBITMQ", "amqp://guest:not-the-password@127.0.0.1:5672"),
    ],
)
def test_credentials_that_do_not_work_stop_the_demo_in_one_line_before_it_makes_anything(
    directory: Path, variable: str, value: str
) -> None:
    result = subprocess.run(
        demo(directory=directory, port=free_port_block(1)),
        env={**os.environ, variable: value},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and f"set {variable}" in errors[0], result.stdout + result.stderr
    assert not directory.exists()
    assert leftovers() == []


def test_a_port_in_use_stops_the_demo_naming_the_option(directory: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(demo(directory=directory, port=port), capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == (
        f"[demo] error: port {port} on 127.0.0.1 is in use (another demo?): choose another with --port N"
    )
    assert not directory.exists()
