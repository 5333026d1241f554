"""The README's demo command, run to the end: both demo datasets synced and verified."""

import socket
import subprocess
import sys

import pytest

from bpsync_dagster_tests.support.environment import PROJECT_ROOT


@pytest.mark.timeout(900)  # the demo itself may take 600 s
def test_the_demo_syncs_a_dataset_by_cli_and_one_by_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "demo.py"), "--port", str(port), "--exit-when-synced"],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verified = [line for line in result.stdout.splitlines() if "decrypted with the receiver's key: ok" in line]
    assert len(verified) == 6, result.stdout
    assert "remote sync API received the manifest of SYNC-DEMO-0002" in result.stdout
