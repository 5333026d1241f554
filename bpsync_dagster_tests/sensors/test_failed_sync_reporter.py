"""What a failed run reports: an info-error and a failed check for a sync that failed, nothing for a
run whose process died after its manifest was delivered (the dataset is synced)."""

import dagster as dg

from bpsync_dagster.resources import BrokerResource
from bpsync_dagster.sensors import failed_sync_reporter
from bpsync_dagster_tests.support.asset_checks import latest_check_evaluation
from bpsync_dagster_tests.support.environment import Node
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_ticks import configure_sensor


def report(instance: dg.DagsterInstance, run_id: str) -> None:
    run = instance.get_run_by_id(run_id)
    (failure,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=failed_sync_reporter.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
        resources={"broker": BrokerResource()},
    ).for_run_failure()
    failed_sync_reporter(context)


def test_a_failed_sync_gets_an_info_error_and_a_failed_check(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        failed = sensor_node.sync_with_a_missing_body("reported")
        assert failed.result.returncode == 1

        report(instance, failed.run_id)

        ((body, _),) = names.error_messages()
    assert body["error"] == "Dataset sync failed in sync service"
    assert failed.dataset_id in body["reason"] and failed.files[-1].accession_id in body["reason"]
    check = latest_check_evaluation(instance, failed.dataset_id)
    assert check is not None and not check.passed
    assert check.metadata["run_id"].value == failed.run_id


def test_a_run_that_died_after_delivering_its_manifest_reports_nothing(sensor_node: Node, monkeypatch) -> None:
    with topology(sensor_node.prefix, "stream") as names:
        instance = configure_sensor(sensor_node, monkeypatch, names)
        dataset_id = sensor_node.dataset_id("delivered")
        sensor_node.add_dataset(dataset_id, [("delivered.c4gh", b"delivered" * 40)])
        synced = sensor_node.sync_mapped(dataset_id)
        assert synced.returncode == 0, synced.stderr
        run_id = synced.stdout.split(" run ", 1)[1].split()[0]
        # As when the process is killed between the last step and the run's success.
        instance.report_run_failed(instance.get_run_by_id(run_id), "the run's process is gone")

        report(instance, run_id)

        assert names.error_messages() == []
    check = latest_check_evaluation(instance, dataset_id)
    assert check is not None and check.passed
