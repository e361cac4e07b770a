"""What the loan-prequal chart ships for monitoring: alert rules that promtool accepts and that
cover the required alerts, the PrometheusRule that wraps them, and the Grafana dashboards as
sidecar ConfigMaps (docs/observability.md)."""

from __future__ import annotations

import json

import yaml

from devstack.tools import tool

from .conftest import CHARTS, by_kind, documents, render, run

ALERTS_FILE = CHARTS / "loan-prequal/files/alerts.rules.yaml"


def test_alert_rules_pass_promtool_and_cover_the_required_alerts() -> None:
    checked = run(tool("promtool"), "check", "rules", str(ALERTS_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"]]
    exprs = {r["alert"]: (r["expr"], r.get("for")) for r in rules}
    assert "> 0.05" in exprs["PrequalApiHighErrorRate"][0]
    assert exprs["PrequalApiHighErrorRate"][1] == "5m"
    assert "0.95" in exprs["PrequalApiHighLatency"][0]
    assert "> 0.5" in exprs["PrequalApiHighLatency"][0]
    assert "> 1000" in exprs["PrequalConsumerLagHigh"][0]
    assert exprs["PrequalConsumerLagHigh"][1] == "10m"
    assert "dlq_records_total" in exprs["PrequalDeadLetterGrowth"][0]
    assert "outbox_oldest_unpublished_age_seconds" in exprs["PrequalOutboxStale"][0]
    assert "> 60" in exprs["PrequalOutboxStale"][0]
    assert "up{" in exprs["PrequalServiceDown"][0]


def test_prometheus_rule_wraps_the_alert_file_unchanged() -> None:
    docs = documents(render("loan-prequal", "--set", "prometheusRule.enabled=true"))
    [rule] = by_kind(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    # Prometheus' own templates survive helm untouched.
    assert "{{ $labels.group }}" in json.dumps(rule)


def test_dashboards_ship_as_sidecar_configmaps_with_queries_on_every_panel() -> None:
    files = sorted((CHARTS / "loan-prequal/files/dashboards").glob("*.json"))
    assert [f.stem for f in files] == ["api", "business", "database", "kafka"]
    maps = {
        c["metadata"]["name"]: c for c in by_kind(documents(render("loan-prequal")), "ConfigMap")
    }
    for path in files:
        configmap = maps[f"rel-loan-prequal-dashboard-{path.stem}"]
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        dashboard = json.loads(configmap["data"][path.name])
        assert dashboard == json.loads(path.read_text())
        assert dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["targets"], panel["title"]
            assert all(t["expr"] for t in panel["targets"]), panel["title"]
