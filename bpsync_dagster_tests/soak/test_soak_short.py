"""The soak script (`soak/run.py`) keeps working: a short soak with faults, poison messages and a
broker that delivers late, run to the end, passes."""

import json
import re
import subprocess
import sys
from pathlib import Path

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

DATASETS = 8
FILES = 2


def test_a_short_soak_with_faults_syncs_every_dataset_exactly_once(tmp_path: Path) -> None:
    results = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "soak" / "run.py"),
            *("--datasets", str(DATASETS), "--files", str(FILES)),
            *("--fault-interval", "3", "8", "--broker-delay", "1", "--timeout", "240", "--json", str(results)),
        ],
        capture_output=True,
        text=True,
        timeout=270,
        cwd=tmp_path,
    )

    output = result.stdout
    assert result.returncode == 0, output[-5000:] + result.stderr[-3000:]
    seed = re.search(r"seed (\d+) \(replay with --seed \1\)", output)
    assert seed, output[:2000]
    summary = output[output.index("soak summary:") :]
    for line in (
        f"datasets synced: {DATASETS}/{DATASETS}",
        "messages lost: 0",
        "duplicate runs: 0",
        "corrupt or partial objects: 0 ",
        "early POSTs: 0",
        "soak result: PASS",
    ):
        assert f"\n  {line}" in summary or f"\n{line}" in summary, f"{line!r} not in\n{summary}"
    histogram = re.search(r"POSTs per dataset: (.*)", summary).group(1)
    assert sum(int(count) for count in re.findall(r"\d+× (\d+)", histogram)) == DATASETS, histogram
    faults = re.findall(r"\] fault \d+: (\w+): ", output)
    assert faults, "no fault was injected"

    saved = json.loads(results.read_text())
    assert saved["summary"]["passed"] and saved["summary"]["seed"] == int(seed.group(1))
    assert saved["summary"]["synced"] == DATASETS and saved["summary"]["early_posts"] == []
    assert saved["summary"]["poison_published"] == 5 and min(saved["summary"]["poison_reports"].values()) == 1
    assert saved["summary"]["poison_problems"] == [] and saved["summary"]["poison_runs"] == []
    assert saved["summary"]["broker_delay"] == 1
    assert sum(saved["summary"]["faults"].values()) == len(faults) == len(saved["faults"])
