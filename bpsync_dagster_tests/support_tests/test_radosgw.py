"""scripts/radosgw: a Ceph cluster with a RADOS Gateway that one command starts and another stops by
PID; its objects survive a clean stop; HTTPS answers with the test CA, and refuses what boto3 sends
by default where the project's client does not."""

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from bpsync_dagster.configuration import S3Storage
from bpsync_dagster.storage.s3_client import make_s3_client
from bpsync_dagster_tests.support.environment import PROJECT_ROOT
from bpsync_dagster_tests.support.radosgw import RadosGateway
from bpsync_dagster_tests.support.s3_server import REGION, s3_client

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
    exported = subprocess.run(
        ["bash", "-c", 'eval "$1"; python3 -c "import os; print(os.environ[\'RGW_ENDPOINT\'])"', "-", result.stdout],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    values = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exported == values["RGW_ENDPOINT"], "eval of the output exports the variables to programs"
    return values


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


def test_over_https_radosgw_refuses_boto3s_default_checksums_and_takes_the_projects_client(
    radosgw: RadosGateway,
) -> None:
    """boto3 >= 1.36 sends an aws-chunked body with a checksum trailer by default; radosgw 16 answers
    411 MissingContentLength over HTTPS. The project's client asks for checksums only when required."""
    https = radosgw.https()
    bucket = f"checksums-{uuid.uuid4().hex[:8]}"
    https.client().create_bucket(Bucket=bucket)
    with_defaults = boto3.client(
        "s3",
        endpoint_url=https.endpoint_url,
        region_name=REGION,
        aws_access_key_id=https.access_key,
        aws_secret_access_key=https.secret_key,
        verify=str(https.ca_certificate),
    )
    entry = S3Storage(
        endpoint=https.endpoint_url,
        access_key=https.access_key,
        secret_key=https.secret_key,
        ca_cert=https.ca_certificate,
        bucket_prefix=bucket,
    )

    with pytest.raises(ClientError, match="MissingContentLength"):
        with_defaults.put_object(Bucket=bucket, Key="refused", Body=b"body")
    make_s3_client(entry).put_object(Bucket=bucket, Key="taken", Body=b"body")

    assert https.client().get_object(Bucket=bucket, Key="taken")["Body"].read() == b"body"
    assert [item["Key"] for item in https.client().list_objects_v2(Bucket=bucket)["Contents"]] == ["taken"]
