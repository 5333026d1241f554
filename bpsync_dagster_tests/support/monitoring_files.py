"""The monitoring files in deploy/ (Prometheus alert rules and scrape example, the Grafana dashboard)
and the metric names their PromQL expressions use."""

import json
import re
from pathlib import Path

import yaml

from bpsync_dagster_tests.support.environment import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
ALERT_RULES = DEPLOY / "prometheus" / "bpsync-alerts.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "bpsync-dashboard.json"

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> dict[str, str]:
    """Every query of the dashboard, by `panel title/refId`."""
    return {
        f"{panel['title']}/{target['refId']}": target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    }


def every_expression() -> dict[str, str]:
    """The alert rules' and the dashboard's PromQL expressions, by where they are."""
    rules = {f"alert {rule['alert']}": rule["expr"] for rule in alert_rules()}
    return {**rules, **{f"panel {where}": expr for where, expr in dashboard_expressions().items()}}


def metric_names(expression: str) -> set[str]:
    """The metric (sample) names a PromQL expression selects: its identifiers that are not functions,
    keywords, label names or label values."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _LABEL_LISTS.sub("", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names


def names_not_exported(exported: set[str]) -> dict[str, set[str]]:
    """For each alert and panel, the metric names it uses that are not among `exported`."""
    unknown = {where: metric_names(expression) - exported for where, expression in every_expression().items()}
    return {where: names for where, names in unknown.items() if names}
