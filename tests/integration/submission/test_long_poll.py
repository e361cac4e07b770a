"""`GET /applications/{id}/status?wait=N`: answered when the decision commits (woken by the
decision's NOTIFY, not by polling), or at N seconds with the status as it is then."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import psycopg
from prometheus_client import CollectorRegistry

from decision_service.handler import DecideApplication, DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy
from prequal.events import CreditReportGenerated
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess
from tests.polling import wait_until


def _decide(database_url: str, application_id: uuid.UUID) -> None:
    """The decision service's own transaction (its handler's `apply`), without Kafka."""
    handler = DecisionHandler(DecisionPolicy(), DecisionMetrics(CollectorRegistry()))
    report = CreditReportGenerated(
        application_id=application_id,
        credit_score=790,
        monthly_income=Decimal(85_000),
        requested_amount=Decimal(500_000),
        loan_type="PERSONAL",
        generated_at=datetime.now(UTC),
    )
    with psycopg.connect(database_url) as conn, conn.transaction():
        handler.apply(conn, DecideApplication(report))


def _long_polls(api: ApiProcess) -> float:
    for line in httpx.get(api.metrics_url, timeout=5).text.splitlines():
        if line.startswith("prequal_api_status_long_polls "):
            return float(line.split()[1])
    return 0.0


def test_a_long_poll_answers_as_soon_as_the_decision_commits(
    api: ApiProcess, database_url: str
) -> None:
    with api.client(timeout=60) as client:
        app_id = client.post("/applications", json=application()).json()["application_id"]
        answers: list[tuple[float, httpx.Response]] = []

        def poll() -> None:
            started = time.monotonic()
            answer = client.get(f"/applications/{app_id}/status", params={"wait": 25})
            answers.append((time.monotonic() - started, answer))

        waiter = threading.Thread(target=poll)
        waiter.start()
        wait_until(lambda: _long_polls(api) >= 1)  # the request is waiting, not yet answered
        _decide(database_url, uuid.UUID(app_id))
        waiter.join(30)
    [(elapsed, answer)] = answers
    assert answer.status_code == 200
    assert answer.json()["status"] == "PRE_APPROVED"
    assert elapsed < 10, f"answered after {elapsed:.1f} s, not when the decision committed"
    assert _long_polls(api) == 0


def test_a_long_poll_answers_the_current_status_at_its_timeout(api: ApiProcess) -> None:
    with api.client(timeout=30) as client:
        app_id = client.post("/applications", json=application()).json()["application_id"]
        started = time.monotonic()
        answer = client.get(f"/applications/{app_id}/status", params={"wait": 2})
        elapsed = time.monotonic() - started
    assert answer.status_code == 200
    assert answer.json()["status"] == "PENDING"
    assert elapsed >= 2


def test_a_final_status_is_answered_at_once_and_wait_is_capped(
    api: ApiProcess, database_url: str
) -> None:
    with api.client(timeout=30) as client:
        app_id = client.post("/applications", json=application()).json()["application_id"]
        _decide(database_url, uuid.UUID(app_id))
        started = time.monotonic()
        answer = client.get(f"/applications/{app_id}/status", params={"wait": 30})
        assert time.monotonic() - started < 5
        assert answer.json()["status"] == "PRE_APPROVED"
        too_long = client.get(f"/applications/{app_id}/status", params={"wait": 31})
        assert too_long.status_code == 422
        assert [d["field"] for d in too_long.json()["details"]] == ["wait"]
        unknown = client.get(f"/applications/{uuid.uuid4()}/status", params={"wait": 30})
        assert unknown.status_code == 404
        document = client.get("/openapi.json").json()
    [wait] = [
        p
        for p in document["paths"]["/applications/{application_id}/status"]["get"]["parameters"]
        if p["name"] == "wait"
    ]
    assert wait["in"] == "query"
    assert wait["schema"]["maximum"] == 30
    assert wait["schema"]["minimum"] == 0
