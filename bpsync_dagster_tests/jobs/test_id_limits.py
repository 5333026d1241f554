"""IDs no run can carry (`bpsync_dagster/dataset_ids.py`) are refused where they enter runs by hand:
`bpsync sync` refuses them before it makes a run, and a run launched with one in its config (from
the UI's launchpad) fails in its first step naming it, before the SDA database is asked."""

import dagster as dg

from bpsync_dagster.dataset_ids import shown
from bpsync_dagster.jobs.failures import failure_reason
from bpsync_dagster.jobs.sync_dataset import sync_run_config
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.sync_job import partition_tags, sync_job


def test_bpsync_sync_refuses_an_id_no_run_can_carry_before_making_a_run(make_node) -> None:
    node: Node = make_node()
    long_id = node.dataset_id("long-") + "7" * 300
    cases = {
        (long_id, "SYNC-F1"): f"bpsync: dataset_id: {shown(long_id)} is longer than 256 characters",
        (node.dataset_id("control"), "SYNC-F\x01"): (
            "bpsync: accession ID: 'SYNC-F\\x01' holds '\\x01', which is not a printable character"
        ),
    }

    for arguments, expected in cases.items():
        result = node.bpsync("sync", *arguments)

        assert (result.returncode, result.stderr.strip()) == (2, expected)
        assert node.instance().get_runs(dg.RunsFilter(tags={"dataset_id": arguments[0]})) == []


def test_a_run_whose_config_holds_a_nul_fails_in_its_first_step_naming_it(make_node, monkeypatch) -> None:
    node: Node = make_node()
    instance = node.configure_this_process(monkeypatch)
    dataset_id = node.dataset_id("nul-file")
    partition_tags(instance, dataset_id)

    result = sync_job().execute_in_process(
        run_config=sync_run_config(["SYNC-F1", "SYNC-F\x002"]),
        instance=instance,
        raise_on_error=False,
        partition_key=dataset_id,
    )

    (failure,) = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.node_handle.name == "fetch_file_records"
    assert (
        failure_reason(failure) == "accession_ids/1: 'SYNC-F\\x002' holds '\\x00', which is not a printable character"
    )
