"""Observability proven on the whole local platform (`LocalPlatform`, what `make run` starts):
a small load goes through it with the real Prometheus scraping every process every second,
then every dashboard query must parse and return data, every metric family issue 7 lists must
be exported, no label value may carry a PAN, e-mail, phone number or application id, the alert
rules must be loaded and a dead letter must fire its alert, and every log line the processes
wrote must be JSON with the required fields and none of the applicants' personal data."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import pipeline
from devstack.hydra import fetch_token
from devstack.net import free_port
from devstack.platform import LocalPlatform, Ports
from prequal.kafka import create_producer
from prequal.kafka_security import KafkaConnection
from tests.applications import application, marked_email, marked_phone, synthetic_pan
from tests.polling import wait_until

DASHBOARDS = Path(__file__).parents[3] / "charts/loan-prequal/files/dashboards"
FINAL = {"PRE_APPROVED", "REJECTED", "MANUAL_REVIEW"}
RATE_INTERVAL = "30s"  # what Grafana's $__rate_interval becomes at a 1 s scrape interval
PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]", re.I)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)

# One query per metric family of issue 7's list, each must return at least one series.
FAMILIES = {
    "API requests": "prequal_api_requests_total",
    "API latency": "prequal_api_request_duration_seconds_bucket",
    "API in flight": "prequal_api_requests_in_flight",
    "outbox backlog": "prequal_outbox_backlog",
    "outbox oldest age": "prequal_outbox_oldest_unpublished_age_seconds",
    "outbox published": "prequal_outbox_published_records_total",
    "outbox failed": "prequal_outbox_publish_errors_total",
    "consumed": "consumer_consumed_records_total",
    "processed": 'consumer_records_total{outcome="processed"}',
    "retried": 'consumer_records_total{outcome="retried"}',
    "dead-lettered": 'consumer_records_total{outcome="dead_lettered"}',
    "DLQ records": "dlq_records_total",
    "consumer lag": "consumer_lag",
    "DB pool in use/idle": "prequal_db_pool_connections",
    "DB query latency": "prequal_db_query_duration_seconds_bucket",
    "applications by final status": "applications_decided_total",
    "credit-score distribution": "credit_score_bucket",
    "operator reconciles": "loan_operator_reconciles_total",
    "operator errors": "loan_operator_errors_total",
    "operator lag": "loan_operator_consumer_lag",
    "operator desired replicas": "loan_operator_desired_replicas",
}
PROCESS_LOGS = ("prequal-api", "outbox-publisher", "credit", "decision", "loan-operator")


@dataclass
class Load:
    """What the load submitted: ids to find, personal data that must appear nowhere."""

    application_ids: list[str] = field(default_factory=list)
    pans: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)


def _body(pan: str, email: str, phone: str, income: int, loan_type: str) -> dict[str, object]:
    return application(
        pan_number=pan,
        email=email,
        phone_number=phone,
        requested_amount=400000,
        monthly_income=income,
        loan_type=loan_type,
    )


def _drive_load(api_url: str, token: str, count: int = 24) -> Load:
    load = Load()
    pans = ["ABCDE1234F", "FGHIJ5678K", *(synthetic_pan() for _ in range(count - 2))]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api_url, timeout=10, headers=headers) as api:
        for index, pan in enumerate(pans):
            email = marked_email()
            phone = marked_phone()
            income = (20_000, 50_000, 90_000)[index % 3]
            loan_type = ("PERSONAL", "HOME", "AUTO")[index % 3]
            answer = api.post("/applications", json=_body(pan, email, phone, income, loan_type))
            assert answer.status_code == 202, answer.text
            load.application_ids.append(answer.json()["application_id"])
            load.pans.append(pan)
            load.emails.append(email)
            load.phones.append(phone)
        again = api.post(
            "/applications", json=_body(pans[0], load.emails[0], load.phones[0], 1, "HOME")
        )
        assert again.status_code == 409
        invalid = api.post("/applications", json={"pan_number": "nope", "email": "x@example.org"})
        assert invalid.status_code == 422

        def all_final() -> bool:
            statuses = [
                api.get(f"/applications/{app_id}/status").json()["status"]
                for app_id in load.application_ids
            ]
            return all(status in FINAL for status in statuses)

        wait_until(all_final, 90, interval=0.5, what="every application decided")
    return load


def _instant(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _poison_record(connection: KafkaConnection, topic: str) -> None:
    """A record no consumer can ever process: the credit-service dead-letters it at once."""
    errors: list[str | None] = []
    producer = create_producer(connection, "observability-test")
    producer.produce(topic, b"poison-key", b"{not json", [], errors.append)
    assert producer.flush(10) == 0
    assert errors == [None]


def _broken_pipeline(platform: LocalPlatform) -> None:
    """A LoanPipeline whose database Secret does not exist: the operator counts an error."""
    assert platform.api_client is not None
    assert platform.kafka is not None
    sample = pipeline.load_sample(platform.kafka.bootstrap)
    body = copy.deepcopy(sample.body)
    body["metadata"]["name"] = "observability-broken"
    body["spec"]["kafka"]["topicPrefix"] = "obsbroken."
    body["spec"]["database"]["secretName"] = "no-such-secret"
    body["spec"]["encryption"]["keySecretName"] = "observability-broken-keys"
    for consumer in body["spec"]["consumers"]:
        consumer["deployment"] = f"observability-broken-{consumer['name']}"
    pipeline.apply_pipeline(
        platform.api_client, pipeline.LocalPipeline(sample.namespace, "observability-broken", body)
    )


@dataclass
class Observed:
    platform: LocalPlatform
    prometheus: httpx.Client
    load: Load

    def query(self, expr: str) -> dict[str, Any]:
        answer = self.prometheus.get("/api/v1/query", params={"query": expr})
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    ports = Ports(
        postgres=free_port(),
        kafka=free_port(),
        api=free_port(),
        prometheus=free_port(),
        hydra=free_port(),
        hydra_admin=free_port(),
    )
    platform = LocalPlatform(
        tmp_path_factory.mktemp("observability") / "run", ports, scrape_interval="1s"
    )
    try:
        platform.start(progress=lambda _line: None)
        assert platform.prometheus is not None
        assert platform.kafka is not None
        assert platform.hydra is not None
        token = fetch_token(platform.hydra.token_url, platform.demo_client())
        load = _drive_load(f"http://127.0.0.1:{ports.api}", token)
        sample = pipeline.load_sample(platform.kafka.bootstrap)
        prefix = sample.body["spec"]["kafka"]["topicPrefix"]
        # increase() needs the counter's 0 in Prometheus before the dead letter, as it would
        # be for any consumer that has run for more than a scrape interval.
        prometheus_url = platform.prometheus.url
        wait_until(
            lambda: _instant(
                prometheus_url, 'dlq_records_total{topic=~".*loan_applications_submitted_dlq"}'
            ),
            60,
            interval=0.5,
            what="the consumers' DLQ counters scraped at 0",
        )
        _poison_record(platform.kafka.connection(), f"{prefix}loan_applications_submitted")
        _broken_pipeline(platform)
        with httpx.Client(base_url=platform.prometheus.url, timeout=10) as prometheus:
            yield Observed(platform, prometheus, load)
    finally:
        platform.stop()


def _dashboard_targets() -> list[tuple[str, str, str]]:
    targets = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                targets.append((path.stem, panel["title"], expr))
    return targets


def test_every_dashboard_query_parses_and_returns_data(observed: Observed) -> None:
    targets = _dashboard_targets()
    assert len(targets) > 30

    def empty_or_failing() -> list[str]:
        problems = []
        for dashboard, title, expr in targets:
            body = observed.query(expr)
            assert body["status"] == "success", f"{dashboard} / {title}: {body}"  # it parses
            if not body["data"]["result"]:
                problems.append(f"{dashboard} / {title}: {expr}")
        return problems

    # Rates need two scrapes after the load, the operator's error a reconcile: wait, bounded.
    deadline = time.monotonic() + 90
    problems = empty_or_failing()
    while problems and time.monotonic() < deadline:
        time.sleep(2)
        problems = empty_or_failing()
    assert not problems, "queries without data:\n" + "\n".join(problems)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_metric_family_of_issue_7_is_exported(observed: Observed, family: str) -> None:
    def series() -> list[Any]:
        result: list[Any] = observed.query(FAMILIES[family])["data"]["result"]
        return result

    wait_until(series, 60, interval=0.5, what=f"{family} ({FAMILIES[family]}) in Prometheus")


def test_business_figures_match_the_load(observed: Observed) -> None:
    decided = observed.query("sum(applications_decided_total)")["data"]["result"]
    assert float(decided[0]["value"][1]) == len(observed.load.application_ids)
    scores = observed.query("sum(credit_score_count)")["data"]["result"]
    assert float(scores[0]["value"][1]) == len(observed.load.application_ids)


def test_no_label_value_carries_a_pan_email_phone_or_application_id(observed: Observed) -> None:
    answer = observed.prometheus.get("/api/v1/series", params={"match[]": '{job=~".+"}'})
    series = answer.json()["data"]
    jobs = {s["job"] for s in series}
    assert {"prequal-api", "outbox-publisher", "loan-operator"} <= jobs
    assert any("credit" in job for job in jobs)
    assert any("decision" in job for job in jobs)
    secrets = set(observed.load.application_ids) | set(observed.load.pans)
    secrets |= set(observed.load.emails) | set(observed.load.phones)
    offending = {
        (labels["__name__"], name, value)
        for labels in series
        for name, value in labels.items()
        if value in secrets
        or any(p.search(value) for p in (PAN, EMAIL, PHONE, UUID))
        or "poison-key" in value
    }
    assert not offending


def test_the_alert_rules_are_loaded_and_a_dead_letter_fires_its_alert(observed: Observed) -> None:
    groups = observed.prometheus.get("/api/v1/rules").json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"PrequalApiHighErrorRate", "PrequalDeadLetterGrowth", "PrequalServiceDown"} <= loaded

    def firing() -> list[dict[str, Any]]:
        alerts = observed.prometheus.get("/api/v1/alerts").json()["data"]["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "PrequalDeadLetterGrowth" and a["state"] == "firing"
        ]

    series = observed.query("dlq_records_total")["data"]["result"]
    [alert] = wait_until(
        firing,
        60,
        interval=0.5,
        what=f"PrequalDeadLetterGrowth firing (dlq_records_total: {series})",
    )
    assert alert["labels"]["topic"].endswith("loan_applications_submitted_dlq")
    assert alert["annotations"]["runbook"] == "README.md#runbook-prequaldeadlettergrowth"


def test_every_log_line_is_json_with_the_required_fields_and_no_personal_data(
    observed: Observed,
) -> None:
    logs = sorted(observed.platform.log_dir.glob("*.log"))
    names = [path.stem for path in logs]
    for process in PROCESS_LOGS:
        assert any(process in name for name in names), (process, names)
    load = observed.load
    forbidden = [*load.pans, *load.emails, *load.phones]
    correlated: set[str] = set()
    checked = 0
    for path in logs:
        if path.stem == "migrate":
            continue  # alembic's one-shot CLI output, not a platform process
        for number, text in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.name}:{number}"
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                pytest.fail(f"{where} is not JSON: {text[:200]}")
            assert isinstance(line, dict), where
            for required in ("timestamp", "level", "service", "message"):
                assert line.get(required), f"{where} lacks {required}: {text[:200]}"
            for value in forbidden:
                assert value not in text, f"{where} carries personal data"
            if line.get("application_id") in load.application_ids:
                correlated.add(line["application_id"])
            checked += 1
    assert checked > 20
    assert correlated, "no log line names a submitted application's id"
