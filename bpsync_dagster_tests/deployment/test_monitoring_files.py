"""deploy/'s Prometheus alert rules, scrape example and Grafana dashboard: well formed, and using only
metrics `bpsync metrics` exports (its families as built for a scrape; `metrics/test_collector.py`
checks them against a real one)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bpsync_dagster.metrics.values import (
    AuditFindings,
    EndedSync,
    Outcome,
    SensorLag,
    Snapshot,
    SyncTally,
)
from bpsync_dagster_tests.support.metrics_exporter import exposition
from bpsync_dagster_tests.support.monitoring_files import (
    ALERT_RULES,
    DEPLOY,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard,
    every_expression,
    load_yaml,
    metric_names,
    names_not_exported,
)


def _exported_names() -> set[str]:
    """The sample names of a scrape in which every source gave its values."""
    tally = SyncTally()
    tally.add(EndedSync(Outcome.SUCCESS, 10.0, 1, 0, 100))
    snapshot = Snapshot(
        tally=tally,
        runs_by_state={"queued": 0, "running": 0},
        last_success_at=1.0,
        audit=AuditFindings(1.0, 1, 0, 0, 0),
        lag=SensorLag("mapping_stream", "stream", 0, 0.0, 0, 0),
        instance_read=True,
        broker_read=True,
    )
    return {name for name, _ in exposition(snapshot)}


def test_alerts_and_panels_use_only_exported_metrics() -> None:
    assert names_not_exported(_exported_names()) == {}
    used = set().union(*(metric_names(expression) for expression in every_expression().values()))
    assert _exported_names() - used == set(), "a metric no panel or alert shows"


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('increase(bpsync_datasets_synced_total{outcome="failure"}[1h]) > 0', {"bpsync_datasets_synced_total"}),
        (
            "time() - max(bpsync_last_successful_sync_timestamp_seconds) > 24 * 3600",
            {"bpsync_last_successful_sync_timestamp_seconds"},
        ),
        ("sum by (le) (rate(x_bucket[5m])) and on(queue) y", {"x_bucket", "y"}),
        ('a{b="c{d}"} or bool e offset 5m', {"a", "e"}),
    ],
)
def test_metric_names_of_an_expression(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_alert_rules_cover_failures_lag_silence_and_drift() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    uses = {rule["alert"]: metric_names(rule["expr"]) for rule in rules}
    assert uses["BpsyncSyncFailed"] == {"bpsync_datasets_synced_total"}
    assert uses["BpsyncSensorLagGrowing"] == {"bpsync_sensor_lag_messages"}
    assert uses["BpsyncNoSuccessfulSync"] == {"bpsync_last_successful_sync_timestamp_seconds"}
    assert uses["BpsyncAuditFoundDrift"] == {"bpsync_audit_datasets", "bpsync_audit_missing_files"}


def test_the_prometheus_example_loads_the_rules_and_scrapes_the_compose_exporter() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert [PROMETHEUS_CONFIG.parent / name for name in config["rule_files"]] == [ALERT_RULES]
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    service = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["bpsync-metrics"]
    command = service["command"]
    assert target == f"bpsync-metrics:{command[command.index('--port') + 1]}"
    assert service["expose"] == [command[command.index("--port") + 1]]
    assert int(job["scrape_timeout"].rstrip("s")) <= int(config["global"]["scrape_interval"].rstrip("s"))


def test_the_dashboard_is_an_importable_grafana_dashboard() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    (variable,) = board["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]


PROMTOOL_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'bpsync_datasets_synced_total{{outcome="failure"}}'
        values: '0 0 1 1 1'
      - series: 'bpsync_audit_datasets{{result="drifted"}}'
        values: '0 0 2 2 2'
    alert_rule_test:
      - eval_time: 1m
        alertname: BpsyncSyncFailed
        exp_alerts: []
      - eval_time: 4m
        alertname: BpsyncSyncFailed
        exp_alerts:
          - exp_labels: {{severity: warning, outcome: failure}}
      - eval_time: 1m
        alertname: BpsyncAuditFoundDrift
        exp_alerts: []
      - eval_time: 4m
        alertname: BpsyncAuditFoundDrift
        exp_alerts:
          - exp_labels: {{severity: warning, result: drifted}}
  - interval: 1m
    input_series:
      - series: 'bpsync_sensor_lag_messages{{queue="mapping_stream", kind="stream"}}'
        values: '1+1x40'
      - series: 'bpsync_sensor_lag_messages{{queue="falling", kind="stream"}}'
        values: '40-1x39'
    alert_rule_test:
      - eval_time: 10m
        alertname: BpsyncSensorLagGrowing
        exp_alerts: []
      - eval_time: 35m
        alertname: BpsyncSensorLagGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, queue: mapping_stream, kind: stream}}
  - interval: 1m
    input_series:
      - series: 'bpsync_last_successful_sync_timestamp_seconds'
        values: '600x1600'
    alert_rule_test:
      - eval_time: 20h
        alertname: BpsyncNoSuccessfulSync
        exp_alerts: []
      - eval_time: 25h
        alertname: BpsyncNoSuccessfulSync
        exp_alerts:
          - exp_labels: {{severity: warning}}
"""


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_the_example_and_the_rules_fire(tmp_path: Path) -> None:
    for command in (["check", "rules", str(ALERT_RULES)], ["check", "config", str(PROMETHEUS_CONFIG)]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    # The rules without their annotations, which promtool would compare as rendered text.
    rules = load_yaml(ALERT_RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    bare_rules = tmp_path / "bpsync-alerts.yml"
    bare_rules.write_text(yaml.safe_dump(rules))
    tests = tmp_path / "bpsync-alerts-test.yml"
    tests.write_text(PROMTOOL_TESTS.format(rules=bare_rules))
    result = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
