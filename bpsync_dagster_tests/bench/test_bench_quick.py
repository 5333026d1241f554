"""The benchmark script (`bench/run.py`) keeps working: its tiny `--quick` version, run to the end,
with its S3 figures against moto and Ceph's RADOS Gateway."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

NUMBER = r"(?:[0-9][0-9,]*(?:\.[0-9]+)?|n/a)"


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (apt-get install -y rclone)")
@pytest.mark.skipif(
    shutil.which("radosgw") is None, reason="radosgw is not installed (apt-get install -y ceph-mon ceph-osd radosgw)"
)
@pytest.mark.timeout(900)  # the benchmark itself may take 600 s
def test_the_quick_benchmark_prints_its_table_with_numbers_and_ratios(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), "--quick", "--json", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    # The last table is the whole one (the daemon part also prints its rows as it goes).
    header = max(index for index, line in enumerate(lines) if line.startswith("group ") and "| ratio" in line)
    rows = [line for line in lines[header + 2 :] if " | " in line and not set(line) <= set("-+ ")]
    cells = [[cell.strip() for cell in row.split(" | ")] for row in rows]
    groups = {row[0] for row in cells}
    assert groups == {
        "1 throughput",
        "2 peak memory",
        "3 small files",
        "4 fixed cost",
        "5 latency",
        "6 many datasets",
    }, groups
    for row in cells:
        assert re.fullmatch(NUMBER, row[3]), row
    ratios = [row[5] for row in cells if row[5]]
    assert len(ratios) >= 20
    assert all(re.fullmatch(NUMBER + "×", ratio) for ratio in ratios), ratios
    measured = {(row[1].split()[0], row[2]) for row in cells}
    assert ("P→P", "bpsync sync, whole run") in measured and ("P→P", "cp + sync") in measured
    # Every S3 case names its server: "P→S3 2×1 MiB on radosgw".
    on_servers = {(row[1].split()[0], row[1].rpartition(" on ")[2], row[2]) for row in cells if "S3" in row[1]}
    for case in ("P→S3", "S3→S3"):
        for server in ("moto", "radosgw"):
            assert (case, server, "bpsync sync, whole run") in on_servers, (case, server)
            assert (case, server, "rclone copy") in on_servers, (case, server)
    assert {server for _, server, _ in on_servers} == {"moto", "radosgw"}
    assert ("P→P", "bpsync sync peak RSS") in measured
    assert ("P→S3", "Dagster events written") in measured
    assert ("shipped", "publish → POST received, median") in measured
    assert ("shipped", "5 datasets: publish → last POST") in measured
    # Every real measurement is a positive number; only a marginal figure may be out of reach.
    for row in cells:
        if row[3] != "n/a":
            assert float(row[3].replace(",", "")) > 0, row
        else:
            assert "marginal" in row[2], row
    saved = json.loads(results.read_text())
    assert saved["rows"] and saved["raw"] and saved["machine"]["cpus"]
