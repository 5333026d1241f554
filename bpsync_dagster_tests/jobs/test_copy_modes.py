"""`bpsync sync` says how each body reached S3: copied by the S3 service itself when the archive is in
the same service (`server-side`), else through the process (`streamed`); what landed decrypts to
the submitted plaintext either way."""

import os

import pytest
from dagster import DagsterEventType, RunsFilter

from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.s3_server import S3_SERVERS

MIB = 1024 * 1024


def copy_files_metadata(node: Node, dataset_id: str) -> dict:
    (run,) = node.instance().get_runs(RunsFilter(tags={"dataset_id": dataset_id}))
    (output,) = [
        event.dagster_event
        for event in node.instance().all_logs(run.run_id, of_type=DagsterEventType.STEP_OUTPUT)
        if event.dagster_event.step_key == "synced_dataset.copy_files[0]"
    ]
    return output.step_output_data.metadata


@pytest.mark.parametrize(
    ("archive", "s3_server", "mode"),
    [
        *[("s3", server, "server-side") for server in (*S3_SERVERS, "radosgw-https")],
        *[("posix", server, "streamed") for server in S3_SERVERS],
    ],
    indirect=["s3_server"],
)
def test_the_copy_mode_is_in_the_metadata_and_the_cli_line(make_node, archive: str, mode: str) -> None:
    node: Node = make_node(archive, "s3")
    dataset_id = node.dataset_id(f"modes-{archive}")
    # Two bodies larger than a part (5 MiB in the tests), one smaller: that one is always streamed.
    files = node.add_dataset(
        dataset_id,
        [
            ("large/a.c4gh", os.urandom(11 * MIB + 7)),
            ("large/b.c4gh", os.urandom(16 * MIB)),
            ("small.c4gh", b"small body\n" * 100),
        ],
    )

    result = node.bpsync("sync", dataset_id, *[item.accession_id for item in files])

    assert result.returncode == 0, result.stderr
    for item in files:
        assert node.decrypt_synced(item.path) == item.plaintext
    modes = {
        row.data["accession_id"]: row.data["mode"]
        for row in copy_files_metadata(node, dataset_id)["files"].value.records
    }
    large, small = {item.accession_id for item in files[:2]}, files[2].accession_id
    assert modes == {**dict.fromkeys(large, mode), small: "streamed"}
    expected_line = "copy mode: streamed" if mode == "streamed" else "copy mode: streamed 1, server-side 2"
    assert f"dataset {dataset_id} synced: 3 files copied, 0 already in place" in result.stdout
    assert expected_line + ";" in result.stdout
