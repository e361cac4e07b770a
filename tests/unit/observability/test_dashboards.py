"""The four dashboards are well-formed Grafana JSON whose every query names only metrics the
processes really export (their metric classes, built here in registries of their own); the alert
rules too. Whether each query parses and returns data is proven against a real Prometheus in
tests/e2e/observability."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from credit_service.handler import CreditMetrics
from decision_service.handler import DecisionMetrics
from devstack.tools import REPO_ROOT
from loan_operator.metrics import Metrics as OperatorMetrics
from outbox_publisher.metrics import PublisherMetrics
from prequal.consumer import ConsumerMetrics
from prequal.metrics import db_query_histogram
from prequal_api.metrics import ApiMetrics, PoolCollector

DASHBOARDS = REPO_ROOT / "charts/loan-prequal/files/dashboards"
RULES = REPO_ROOT / "charts/loan-prequal/files/alerts.rules.yaml"
PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "piechart", "heatmap", "table"}
GRAFANA_VARIABLES = {"$__rate_interval"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "inf", "nan"}
# Collected at scrape time from live objects (a database, a pool): named here.
SCRAPE_TIME_GAUGES = {"prequal_outbox_backlog", "prequal_outbox_oldest_unpublished_age_seconds"}


class _Pool:
    max_size = 10

    def get_stats(self) -> dict[str, int]:
        return {"pool_size": 2, "pool_available": 1, "pool_max": 10, "requests_waiting": 0}


def _series_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def exported_metric_names() -> set[str]:
    """Every series name the five processes export, from their own metric classes."""
    api = CollectorRegistry()
    ApiMetrics(api)
    api.register(PoolCollector(_Pool()))  # type: ignore[arg-type]
    publisher = CollectorRegistry()
    PublisherMetrics(publisher)
    db_query_histogram(publisher)
    credit = CollectorRegistry()
    ConsumerMetrics(credit)
    CreditMetrics(credit)
    decision = CollectorRegistry()
    ConsumerMetrics(decision)
    DecisionMetrics(decision)
    names = {"up"} | SCRAPE_TIME_GAUGES
    for registry in (api, publisher, credit, decision, OperatorMetrics().registry):
        names |= _series_names(registry)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (strings, matchers and ranges removed)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if not following.startswith("(") and match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _targets() -> list[tuple[str, str, str]]:
    return [
        (name, panel["title"], target["expr"])
        for name, dashboard in _dashboards().items()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    dashboards = _dashboards()
    assert sorted(dashboards) == ["api", "business", "database", "kafka"]
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == 4
    for dashboard in dashboards.values():
        assert dashboard["title"].startswith("Loan prequal / ")
        [variable] = dashboard["templating"]["list"]
        assert (variable["name"], variable["type"]) == ("datasource", "datasource")


@pytest.mark.parametrize("name", ["api", "business", "database", "kafka"])
def test_panels_are_complete_and_laid_out_without_overlap(name: str) -> None:
    panels = _dashboards()[name]["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES
        assert panel["title"]
        assert panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"]["unit"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, panel["title"]
        occupied |= cells
        refs = [t["refId"] for t in panel["targets"]]
        assert refs
        assert len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert set(re.findall(r"\$\w+", target["expr"])) <= GRAFANA_VARIABLES


def test_every_dashboard_query_names_only_exported_metrics() -> None:
    exported = exported_metric_names()
    unknown = {
        (dashboard, title, name)
        for dashboard, title, expr in _targets()
        for name in metric_names(expr)
        if name not in exported
    }
    assert not unknown


def test_every_alert_names_only_exported_metrics() -> None:
    exported = exported_metric_names()
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    unknown = {(r["alert"], n) for r in rules for n in metric_names(r["expr"]) if n not in exported}
    assert not unknown


def test_the_metric_name_extraction_finds_metrics_and_skips_functions_and_labels() -> None:
    expr = (
        '(sum(rate(a_total{status=~"5.."}[$__rate_interval])) or vector(0)) / sum by (le, route)'
        " (rate(b_bucket[5m])) > 0.5 and on (job) up"
    )
    assert metric_names(expr) == {"a_total", "b_bucket", "up"}
    assert "http_requests_total" not in exported_metric_names()  # the old, wrong name


def test_dashboards_cover_what_issue_7_asks_for() -> None:
    """Rate, errors, latency percentiles; lag and DLQ growth; outbox age; decisions by status;
    credit-score distribution; pool and query latency; the operator's figures."""
    used = {name for _, _, expr in _targets() for name in metric_names(expr)}
    assert {
        "prequal_api_requests_total",
        "prequal_api_request_duration_seconds_bucket",
        "prequal_api_requests_in_flight",
        "consumer_lag",
        "dlq_records_total",
        "prequal_outbox_oldest_unpublished_age_seconds",
        "applications_decided_total",
        "credit_score_bucket",
        "prequal_db_pool_connections",
        "prequal_db_query_duration_seconds_bucket",
        "loan_operator_desired_replicas",
    } <= used


def test_dashboards_ship_unchanged_where_grafana_reads_them() -> None:
    """manifests/monitoring links the chart's files rather than copying them."""
    for path in DASHBOARDS.glob("*.json"):
        link = REPO_ROOT / "manifests/monitoring/files" / path.name
        assert Path(link).resolve() == path.resolve()
