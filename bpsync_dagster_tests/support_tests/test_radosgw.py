"""scripts/radosgw: a Ceph cluster with a RADOS Gateway that one command starts and another stops by
PID; its objects survive a clean stop; HTTPS answers with the test CA."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from bpsync_dagster_tests.support.environment import PROJECT_ROOT
from bpsync_dagster_tests.support.s3_server import s3_client

SCRIPT = PROJECT_ROOT / "scripts" / "radosgw"

pytestmark = pytest.mark.skipif(
    shutil.which("radosgw") is None, reason="radosgw is not installed (apt-get install -y ceph-mon ceph-osd radosgw)"
)


def script(*arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(SCRIPT), *arguments], capture_output=True, text=True, timeout=180, env=environment, check=False
    )


def started(directory: Path, *options: str) -> dict[str, str]:
    result = script("start", "--dir", str(directory), *options)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def daemon_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_script_starts_stops_and_restarts_a_gateway_that_keeps_its_objects(tmp_path: Path) -> None:
    directory = tmp_path / "rgw"
    values = started(directory, "--tls")
    pids = json.loads((directory / "state.json").read_text())["pids"]
    try:
        port = int(values["RGW_ENDPOINT"].rsplit(":", 1)[1])
        assert port < 32768 and sorted(pids) == ["mon", "osd", "rgw"]
        client = s3_client(values["RGW_ENDPOINT"], values["RGW_ACCESS_KEY"], values["RGW_SECRET_KEY"])
        client.create_bucket(Bucket="kept")
        client.put_object(Bucket="kept", Key="a/b", Body=b"payload")
        over_tls = s3_client(
            values["RGW_HTTPS_ENDPOINT"],
            values["RGW_ACCESS_KEY"],
            values["RGW_SECRET_KEY"],
            Path(values["RGW_CA_CERT"]),
        )
        assert over_tls.get_object(Bucket="kept", Key="a/b")["Body"].read() == b"payload"
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            s3_client(values["RGW_ENDPOINT"], "someone-else", values["RGW_SECRET_KEY"]).list_buckets()

        assert started(directory) == values  # running already: the same gateway

        stopped = script("stop", "--dir", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert not any(daemon_running(pid) for pid in pids.values())
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

        assert started(directory, "--tls") == values
        pids = json.loads((directory / "state.json").read_text())["pids"]
        assert client.get_object(Bucket="kept", Key="a/b")["Body"].read() == b"payload"
    finally:
        script("stop", "--dir", str(directory))
    assert not any(daemon_running(pid) for pid in pids.values())
    assert json.loads((directory / "state.json").read_text())["pids"] == {}


def test_the_script_names_what_is_wrong(tmp_path: Path) -> None:
    missing = script("stop", "--dir", str(tmp_path / "none"))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("not a cluster")
    busy = script("start", "--dir", str(tmp_path / "busy"))

    assert missing.returncode == 1 and "state.json does not exist" in missing.stderr
    assert busy.returncode == 1 and "is not empty" in busy.stderr
    assert "Traceback" not in missing.stderr + busy.stderr
