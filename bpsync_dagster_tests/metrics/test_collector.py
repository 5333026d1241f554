"""`bpsync metrics` against the real instance and broker: a sync, a failed sync and an audit move
their metrics; messages published while no daemon runs show as the sensor's lag."""

import os
import time
from pathlib import Path

import pytest

from bpsync_dagster.jobs.audit_sync import audit_sync
from bpsync_dagster.metrics.collector import BROKER_BUDGET_SECONDS
from bpsync_dagster.resources import RESOURCES
from bpsync_dagster_tests.support.daemon import Daemon, wait_until
from bpsync_dagster_tests.support.environment import SDA_DB_DATASETS_USER, Node
from bpsync_dagster_tests.support.metrics_exporter import MetricsExporter, key
from bpsync_dagster_tests.support.monitoring_files import names_not_exported
from bpsync_dagster_tests.support.rabbitmq import topology
from bpsync_dagster_tests.support.sensor_state import cursor_on


def _synced(outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return key("bpsync_datasets_synced_total", outcome=outcome)


def test_a_sync_a_failed_sync_and_an_audit_move_their_metrics(
    make_isolated_node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node: Node = make_isolated_node()
    node.database_user = SDA_DB_DATASETS_USER  # the audit lists the local datasets
    dataset_id = node.dataset_id("ok")
    files = node.add_dataset(dataset_id, [("a.c4gh", os.urandom(3000)), ("b.c4gh", os.urandom(70_000))])
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        with MetricsExporter(node, tmp_path / "metrics.log") as exporter:
            before = exporter.scrape()
            started = time.time()
            synced = node.sync_mapped(dataset_id)
            assert synced.returncode == 0, synced.stdout + synced.stderr
            after_sync = exporter.scrape()
            object_bytes = sum(len(node.synced_object(item.path) or b"") for item in files)
            failed = node.sync_with_a_missing_body("bad")
            assert failed.result.returncode == 1, failed.result.stdout + failed.result.stderr
            after_failure = exporter.scrape()

            (node.sync_dir / files[0].path).unlink()
            audit = audit_sync.execute_in_process(
                instance=node.configure_this_process(monkeypatch), resources=RESOURCES
            )
            assert audit.success
            after_audit = exporter.scrape()
            port = exporter.url.rsplit(":", 1)[1].split("/")[0]
            taken = node.bpsync("metrics", "--port", port, timeout=120)

        # Another exporter, started afresh, with no broker to read: the instance's values are all there.
        node.extra_env["BROKER_PORT"] = "1"
        with MetricsExporter(node, tmp_path / "metrics-restarted.log") as restarted:
            without_broker = restarted.scrape()
        assert "broker.queue" in restarted.log() and "cannot connect" in restarted.log()

    assert taken.returncode == 2
    assert taken.stderr.strip().splitlines() == [
        f"bpsync: metrics: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]

    assert before[key("bpsync_source_up", source="dagster_instance")] == 1
    assert before[key("bpsync_source_up", source="broker")] == 1
    assert before[_synced("success")] == before[_synced("failure")] == 0
    assert before[key("bpsync_sync_runs", state="queued")] == before[key("bpsync_sync_runs", state="running")] == 0
    assert key("bpsync_last_successful_sync_timestamp_seconds") not in before

    assert after_sync[_synced("success")] == 1 and after_sync[_synced("failure")] == 0
    assert after_sync[key("bpsync_files_copied_total")] == 2
    assert after_sync[key("bpsync_copied_bytes_total")] == object_bytes > 73_000
    assert after_sync[key("bpsync_sync_duration_seconds_count", outcome="success")] == 1
    assert 0 < after_sync[key("bpsync_sync_duration_seconds_sum", outcome="success")] < time.time() - started
    assert started <= after_sync[key("bpsync_last_successful_sync_timestamp_seconds")] <= time.time()

    # The failed run copied nothing in a step that succeeded: only its outcome and duration count.
    assert after_failure[_synced("failure")] == 1 and after_failure[_synced("success")] == 1
    assert after_failure[key("bpsync_files_copied_total")] == 2
    assert after_failure[key("bpsync_copied_bytes_total")] == object_bytes
    assert after_failure[key("bpsync_sync_duration_seconds_count", outcome="failure")] == 1
    last_success = key("bpsync_last_successful_sync_timestamp_seconds")
    assert after_failure[last_success] == after_sync[last_success]

    assert after_audit[key("bpsync_audit_datasets", result="drifted")] == 1
    assert after_audit[key("bpsync_audit_missing_files")] == 1
    # The failed dataset, and those of other tests in the shared SDA database, never synced here.
    assert after_audit[key("bpsync_audit_datasets", result="never_synced")] >= 1
    assert after_audit[key("bpsync_audit_last_run_timestamp_seconds")] >= started

    assert without_broker[key("bpsync_source_up", source="broker")] == 0
    assert without_broker[key("bpsync_source_up", source="dagster_instance")] == 1
    assert {name: value for name, value in without_broker.items() if name[0] != "bpsync_source_up"} == {
        name: value for name, value in after_audit.items() if name[0] != "bpsync_source_up"
    }


def test_messages_published_while_no_daemon_runs_show_as_the_sensors_lag(
    make_isolated_node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And once a dataset is synced and audited too, the scrape holds every metric deploy/'s alert rules
    and dashboard use."""
    node: Node = make_isolated_node()
    node.database_user = SDA_DB_DATASETS_USER  # the audit lists the local datasets
    dataset_id = node.dataset_id("one")
    node.add_dataset(dataset_id, [("one.c4gh", b"one" * 100)])
    with topology(node.prefix, "stream") as names:
        node.extra_env = {"BROKER_QUEUE": names.mapping_queue, "BROKER_EXCHANGE": names.exchange}
        names.publish({"type": "mapping", "dataset_id": "ELSEWHERE-1", "accession_ids": ["ELSEWHERE-1-F"]})
        instance = node.instance()
        with Daemon(node.environment(), tmp_path / "daemon.log") as daemon:
            cursor = wait_until(lambda: cursor_on(instance, names.mapping_queue), 90, "the sensor's first tick")
            daemon.stop()
        assert cursor["offset"] == 0, cursor  # streamStart next: the tail, pinned as handled
        queue = {"queue": names.mapping_queue, "kind": "stream"}

        with MetricsExporter(node, tmp_path / "metrics.log") as exporter:
            idle = exporter.scrape()
            published = time.time()
            for index in range(3):
                names.publish({"type": "mapping", "dataset_id": f"ELSEWHERE-{index}", "accession_ids": ["F"]})
            time.sleep(2.5)
            waiting = exporter.scrape()
            time.sleep(2)
            later = exporter.scrape()
            scraped = time.time()

            assert node.sync_mapped(dataset_id).returncode == 0
            audit = audit_sync.execute_in_process(
                instance=node.configure_this_process(monkeypatch), resources=RESOURCES
            )
            assert audit.success
            complete = exporter.scrape()
            print(f"scrapes took {', '.join(f'{seconds:.2f}' for seconds in exporter.scrape_seconds)} s")
            assert max(exporter.scrape_seconds) < BROKER_BUDGET_SECONDS + 2

    assert idle[key("bpsync_sensor_lag_messages", **queue)] == 0
    assert idle[key("bpsync_sensor_oldest_unhandled_message_age_seconds", **queue)] == 0
    assert waiting[key("bpsync_sensor_lag_messages", **queue)] == 3
    assert waiting[key("bpsync_sensor_handled_offset", **queue)] == 0
    assert waiting[key("bpsync_stream_tail_offset", **queue)] == 3
    age = waiting[key("bpsync_sensor_oldest_unhandled_message_age_seconds", **queue)]
    assert 2.5 <= age <= scraped - published + 1.5, age
    later_age = later[key("bpsync_sensor_oldest_unhandled_message_age_seconds", **queue)]
    assert 2 <= later_age - age <= 4, (age, later_age)

    assert names_not_exported({name for name, _ in complete}) == {}
