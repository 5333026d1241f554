"""The SDA database (a private PostgreSQL cluster) is down or restarts around a run: down at the
start but back within `fetch_file_records`' retries, the run succeeds; down for longer, the run
fails with one line naming the database and re-executes once it is back; restarted while the files
are copied, the run does not notice. Back-off jitter is pinned (`support/pinned_backoff_cli.py`)."""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bpsync_dagster.jobs.failures import DATABASE_RETRY
from bpsync_dagster_tests.support.environment import SDA_DB_USER, Node
from bpsync_dagster_tests.support.faults import (
    PRIVATE_SDA_DB,
    ManifestWitness,
    bpsync_pinned,
    failure_line,
    read_until,
    run_id_of,
    start_bpsync,
    use_private_sda_database,
    witnessed_remote,
)
from bpsync_dagster_tests.support.private_postgres import PrivatePostgres

MIB = 1024 * 1024


@pytest.fixture
def sda_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    with PrivatePostgres(tmp_path / "sda-postgres") as database:
        yield database


@pytest.fixture
def witnessed_node(make_node, sda_postgres: PrivatePostgres) -> Iterator[tuple[Node, ManifestWitness]]:
    node: Node = make_node("posix", "s3")
    use_private_sda_database(node, sda_postgres)
    remote, witness = witnessed_remote(node)
    yield node, witness
    remote.stop()


def seed_dataset(node: Node, witness: ManifestWitness, name: str, sizes: list[int]) -> str:
    dataset_id = node.dataset_id(name)
    files = node.add_dataset(
        dataset_id, [(f"{name}/{index}.c4gh", os.urandom(size)) for index, size in enumerate(sizes)]
    )
    witness.expect(dataset_id, files)
    return dataset_id


def assert_synced(node: Node, witness: ManifestWitness, dataset_id: str) -> None:
    for item in witness.expected[dataset_id]:
        assert node.decrypt_synced(item.path) == item.plaintext
    assert witness.posts[dataset_id] == 1 and witness.problems == []


def test_a_database_down_at_the_start_and_back_within_the_retries(
    witnessed_node: tuple[Node, ManifestWitness], sda_postgres: PrivatePostgres
) -> None:
    node, witness = witnessed_node
    dataset_id = seed_dataset(node, witness, "late-database", [1000, 2000])
    sda_postgres.stop()

    process = start_bpsync(node, *node.sync_arguments(dataset_id), jitter=0.2)
    lines = read_until(process, "fetch_file_records will retry")
    sda_postgres.start()
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest

    assert process.returncode == 0, output
    assert (
        f"cannot connect to the SDA database {SDA_DB_USER}@127.0.0.1:{sda_postgres.port}/{PRIVATE_SDA_DB}" in lines[-1]
    )
    assert_synced(node, witness, dataset_id)


def test_a_database_down_past_the_retries_fails_in_one_line_and_reexecutes_once_back(
    witnessed_node: tuple[Node, ManifestWitness], sda_postgres: PrivatePostgres
) -> None:
    node, witness = witnessed_node
    dataset_id = seed_dataset(node, witness, "absent-database", [1000, 2000])
    sda_postgres.stop()

    failed = bpsync_pinned(node, *node.sync_arguments(dataset_id), jitter=0.02)

    assert failed.returncode == 1
    line = failure_line(failed.stderr)
    assert f"dataset {dataset_id}" in line and "fetch_file_records" in line
    assert f"cannot connect to the SDA database {SDA_DB_USER}@127.0.0.1:{sda_postgres.port}/{PRIVATE_SDA_DB}" in line
    assert failed.stdout.count("fetch_file_records will retry") == DATABASE_RETRY.max_retries
    assert "Traceback" not in failed.stderr and node.remote.attempts == 0
    sda_postgres.start()

    resumed = bpsync_pinned(node, "reexecute", run_id_of(failed.stdout), jitter=0.02)

    assert resumed.returncode == 0, resumed.stderr
    assert_synced(node, witness, dataset_id)


def test_a_database_restarted_while_the_files_are_copied(
    witnessed_node: tuple[Node, ManifestWitness], sda_postgres: PrivatePostgres
) -> None:
    node, witness = witnessed_node
    dataset_id = seed_dataset(node, witness, "restarted-database", [8 * MIB] * 4)
    restarts_done: list[float] = []
    copy_done = threading.Event()

    def restart_until_the_copy_is_done() -> None:
        while not copy_done.is_set():
            sda_postgres.restart()
            restarts_done.append(time.monotonic())

    process = start_bpsync(node, *node.sync_arguments(dataset_id), "--parallel-files", "1", jitter=0.02)
    lines = read_until(process, "copy_files[0] ...")
    restarter = threading.Thread(target=restart_until_the_copy_is_done)
    restarter.start()
    try:
        lines += read_until(process, "copy_files[0] done")
        copy_finished = time.monotonic()
    finally:
        copy_done.set()
        restarter.join()
    rest, _ = process.communicate(timeout=120)
    output = "".join(lines) + rest

    assert process.returncode == 0, output
    assert [moment for moment in restarts_done if moment < copy_finished], "no restart ended before the copy did"
    assert "will retry" not in output
    assert_synced(node, witness, dataset_id)
