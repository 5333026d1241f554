"""`bpsync sync --dry-run`, `--bwlimit` and the live progress line, against a real node: SDA database
in Postgres, POSIX and S3 storage, the remote API and the Dagster instance."""

import hashlib
import os
import re
import select
import subprocess
import sys
import time

import pytest
from dagster import DagsterEventType

from bpsync_dagster_tests.support.environment import Node

MiB = 1024 * 1024


def sync_storage_state(node: Node) -> dict[str, str]:
    """Every file under the POSIX sync directory (temporary ones included), or every S3 sync bucket,
    object and open multipart upload, with the sha256 of each object's bytes."""
    if node.sync == "posix":
        return {
            str(path.relative_to(node.sync_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in node.sync_dir.rglob("*")
            if path.is_file()
        }
    client = node.s3.client()
    state = {name: hashlib.sha256(node.synced_object(name) or b"").hexdigest() for name in node.visible_sync_names()}
    for bucket in node.sync_buckets():
        state[f"bucket {bucket}"] = ""
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            state[f"upload {upload['Key']}"] = upload["UploadId"]
    return state


@pytest.mark.parametrize("sync", ["posix", "s3"])
def test_a_dry_run_lists_each_file_and_what_would_happen_and_changes_nothing(make_node, sync: str) -> None:
    node: Node = make_node("posix", sync)
    dataset_id = node.dataset_id("dry")
    files = node.add_dataset(
        dataset_id,
        [("new.c4gh", b"n" * 3000), ("there.c4gh", b"t" * 2000), ("short.c4gh", b"s" * 100), ("gone.c4gh", b"g")],
    )
    new, there, short, gone = (item.accession_id for item in files)
    assert node.bpsync("sync", dataset_id, there).returncode == 0  # synced before
    node.archived_body_path(short).write_bytes(b"cut")  # not the size sda.files says
    node.archived_body_path(gone).unlink()
    runs_before = node.instance().get_runs_count()
    posts_before = len(node.remote.received)
    storage_before = sync_storage_state(node)

    result = node.sync_mapped(dataset_id, "--dry-run")

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"bpsync: dataset {dataset_id}: dry run: nothing is written, posted or recorded"
    by_file = {line.split()[0]: line for line in lines[1:-1]}
    assert set(by_file) == {new, there, short, gone}
    where = f"s3://{node.bucket_prefix}1/" if sync == "s3" else f"{node.sync_dir}/"
    assert re.fullmatch(rf"\s*{new}\s+copy\s+\d+ bytes {re.escape(where)}{node.prefix}/new\.c4gh", by_file[new])
    assert re.search(rf"{there}\s+replace\s+\d+ bytes .*\(an object of \d+ bytes is there\)", by_file[there])
    assert re.search(rf"{short}\s+refuse .*is 3 bytes but sda.files.archive_file_size says", by_file[short])
    assert re.search(rf"{gone}\s+refuse .*does not exist", by_file[gone])
    assert lines[-1] == (
        f"bpsync: dataset {dataset_id}: the sync would fail: dataset {dataset_id}: copy_files would fail for "
        f"{short}, {gone} (the other files would be copied) and the manifest would not be posted"
    )
    assert sync_storage_state(node) == storage_before
    assert len(node.remote.received) == posts_before
    assert node.instance().get_runs_count() == runs_before


def test_a_dry_run_of_a_dataset_the_run_would_refuse_refuses_every_file(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("twice")
    path = f"{node.prefix}/same.c4gh"
    first = node.add_file(f"{dataset_id}-F1", path, b"first")
    second = node.add_file(f"{dataset_id}-F2", path, b"second")
    node.map_dataset(dataset_id, [first.accession_id, second.accession_id])

    result = node.sync_mapped(dataset_id, "--dry-run")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    for item in (first, second):
        (line,) = [line for line in lines if line.strip().startswith(item.accession_id)]
        assert "refuse" in line and "another file of the dataset has the same submission_file_path" in line
    assert "have the same submission_file_path" in lines[-1] and "the sync would fail" in lines[-1]
    assert node.visible_sync_names() == []


def test_a_dry_run_of_a_good_dataset_says_what_it_would_copy_and_the_sync_then_does(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("good")
    node.add_dataset(dataset_id, [("a.c4gh", b"a" * 500), ("b.c4gh", b"b" * 700)])

    planned = node.sync_mapped(dataset_id, "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert node.visible_sync_names() == []
    sizes = [int(size) for size in re.findall(r" copy +(\d+) bytes ", planned.stdout)]
    assert len(sizes) == 2
    assert planned.stdout.splitlines()[-1] == (
        f"bpsync: dataset {dataset_id}: would copy 2 files, {sum(sizes)} bytes (0 replacing an object already "
        "there), and post the manifest"
    )

    synced = node.sync_mapped(dataset_id)
    assert synced.returncode == 0, synced.stderr
    assert f"{sum(sizes)} bytes" in synced.stdout.splitlines()[-1]


def copy_seconds(node: Node, run_id: str) -> float:
    """How long the run's copy step took, from its start to its success in the event log."""
    instance = node.instance()
    times = {}
    for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        (record,) = [
            record
            for record in instance.get_records_for_run(run_id, of_type=kind).records
            if "copy_files" in (record.event_log_entry.step_key or "")
        ]
        times[kind] = record.event_log_entry.timestamp
    return times[DagsterEventType.STEP_SUCCESS] - times[DagsterEventType.STEP_START]


def test_bwlimit_caps_the_sync_and_overrides_the_configuration(make_node) -> None:
    node: Node = make_node("posix", "posix")
    node.extra_env = {"SYNC_COPY_BANDWIDTHLIMIT": "64MB"}
    dataset_id = node.dataset_id("capped")
    node.add_dataset(dataset_id, [(f"f{index}.c4gh", os.urandom(2 * MiB)) for index in range(4)])

    result = node.sync_mapped(dataset_id, "--bwlimit", "2MB")

    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split(" run ", 1)[1].split()[0]
    seconds = copy_seconds(node, run_id)
    assert 8 / 2 * 0.9 <= seconds <= 8 / 2 * 1.25, seconds  # the step also opens and renames its files
    bad = node.sync_mapped(dataset_id, "--bwlimit", "fast")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "bpsync sync: error: argument --bwlimit: must be a data size such as 50MB, not 'fast'"
    )


def run_on_a_terminal(node: Node, arguments: list[str]) -> tuple[int, str]:
    """`bpsync` with its stdout on a pseudo-terminal (stderr too, as in a shell); what the terminal got."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bpsync_dagster.cli", *arguments],
        cwd=node.root,
        env=node.environment(),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    received = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            received += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=60), received.decode()


def test_on_a_terminal_a_live_line_shows_bytes_rate_files_and_eta(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("live")
    node.add_dataset(dataset_id, [(f"f{index}.c4gh", os.urandom(MiB)) for index in range(4)])

    status, shown = run_on_a_terminal(node, [*node.sync_arguments(dataset_id), "--bwlimit", "1MB"])

    assert status == 0, shown
    live = re.findall(
        r"\r  copy_files\[0\]: ([\d.]+ (?:B|KiB|MiB)) of 4 MiB, ([\d.]+) (B|KiB|MiB)/s, (\d) of 4 files, "
        r"ETA (\d+:\d\d|--:--)\x1b\[K(.)",
        shown,
        flags=re.DOTALL,
    )
    assert len(live) >= 6, shown  # redrawn every half second over about four seconds
    assert len({done for done, *_ in live}) >= 4, live  # the bytes grow while files are still being copied
    assert live[-1][0] == "4 MiB" and live[-1][3] == "4", live
    assert any(eta not in ("--:--", "0:00") for *_, eta, _next in live), live
    rates = [float(rate) * {"B": 1, "KiB": 1024, "MiB": MiB}[unit] for _, rate, unit, *_ in live]
    assert any(0.5 * MiB <= rate <= 1.5 * MiB for rate in rates), live
    # Whatever comes after the live line starts by going back to the start of the line.
    assert {after for *_, after in live} == {"\r"}, live
    # The steps' lines and the log lines stay as they were, each on a line of its own.
    plain = re.sub(r"\r[^\r\n]*\x1b\[K", "", shown).replace("\r\n", "\n")
    assert "  copy_files[0] ...\n" in plain and "  copy_files[0] done\n" in plain, plain
    assert re.search(
        r"\n[\d-]+ [\d:,]+ INFO bpsync_dagster.jobs.sync_dataset: dataset \S+: 4 of 4 files in place", plain
    )
    assert f"bpsync: dataset {dataset_id} synced: 4 files copied" in plain


def test_without_a_terminal_the_output_has_no_live_line(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("plain")
    node.add_dataset(dataset_id, [("p.c4gh", os.urandom(MiB))])

    result = node.sync_mapped(dataset_id, "--bwlimit", "1MB")

    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout + result.stderr and "\x1b" not in result.stdout + result.stderr
    steps = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert steps[:8] == [
        f"  {step} {state}"
        for step in ("fetch_file_records", "reencrypt_headers", "plan_copy_batches", "copy_files[0]")
        for state in ("...", "done")
    ]
