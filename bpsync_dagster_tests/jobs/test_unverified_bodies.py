"""A file without an `ARCHIVED` checksum in the SDA database is synced, its body checked by length only,
and the run says so: in the log and, per file, in the metadata of `copy_files`."""

from contextlib import closing

import psycopg2
from dagster import DagsterEventType, RunsFilter

from bpsync_dagster_tests.support.environment import Node


def forget_archived_checksum(node: Node, accession_id: str) -> None:
    with closing(psycopg2.connect(node.sda_dsn)) as connection, connection, connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM sda.checksums WHERE source = 'ARCHIVED' "
            "AND file_id = (SELECT id FROM sda.files WHERE stable_id = %s)",
            (accession_id,),
        )
        assert cursor.rowcount == 1


def copy_files_metadata(node: Node, dataset_id: str) -> dict:
    (run,) = node.instance().get_runs(RunsFilter(tags={"dataset_id": dataset_id}))
    (output,) = [
        event.dagster_event
        for event in node.instance().all_logs(run.run_id, of_type=DagsterEventType.STEP_OUTPUT)
        if event.dagster_event.step_key == "synced_dataset.copy_files[0]"
    ]
    return output.step_output_data.metadata


def test_a_body_without_archived_checksum_is_synced_and_reported_not_verified(make_node) -> None:
    node: Node = make_node("posix", "posix")
    dataset_id = node.dataset_id("unverified")
    checked, unchecked = node.add_dataset(dataset_id, [("checked.c4gh", b"c" * 5000), ("unchecked.c4gh", b"u" * 7000)])
    forget_archived_checksum(node, unchecked.accession_id)

    result = node.sync_mapped(dataset_id)

    assert result.returncode == 0, result.stderr
    assert node.decrypt_synced(unchecked.path) == unchecked.plaintext
    metadata = copy_files_metadata(node, dataset_id)
    assert metadata["files_not_verified"].value == 1
    rows = {row.data["accession_id"]: row.data["checksum"] for row in metadata["files"].value.records}
    assert rows == {checked.accession_id: "ok", unchecked.accession_id: "not verified"}
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "not verified" in line]
    assert warnings and all(
        f"file {unchecked.accession_id}: not verified: sda.checksums has no ARCHIVED sha256" in line
        for line in warnings
    ), warnings
