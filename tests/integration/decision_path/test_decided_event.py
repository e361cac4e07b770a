"""`loan.application.decided.v1`: each decision is written through the outbox in its own
transaction and reaches `loan_applications_decided` exactly once, with no personal data."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from decision_service.handler import DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy
from prequal import dlq, events
from prequal.kafka import create_topics
from tests.integration.submission.conftest import base_env, start_publisher
from tests.kafka_reader import read_records
from tests.polling import wait_until

from .conftest import (
    GROUP_DECISION,
    World,
    application_status,
    insert_application,
    report_payload,
)


@pytest.fixture
def decided_topic(world: World) -> str:
    name = f"decided-{uuid.uuid4().hex[:8]}"
    create_topics(world.kafka, {name: 3, dlq.dlq_topic(name): 1})
    return name


def test_a_decision_is_published_once_on_the_decided_topic(
    world: World, decided_topic: str, tmp_path: Path
) -> None:
    app = insert_application(
        world.database_url,
        world.keyring,
        monthly_income=Decimal(85_000),
        requested_amount=Decimal(500_000),
    )
    handler = DecisionHandler(
        DecisionPolicy(), DecisionMetrics(CollectorRegistry()), decided_topic=decided_topic
    )
    world.consumers.start(world.topics.reports, GROUP_DECISION, handler)
    report = report_payload(app, 720)
    event_id = world.producer.event(
        world.topics.reports, events.CREDIT_REPORT_GENERATED, report, key=str(app.id)
    )
    # The same event re-sent, and a second report: neither decides (nor publishes) again.
    world.producer.event(
        world.topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report,
        key=str(app.id),
        event_id=event_id,
    )
    world.producer.event(
        world.topics.reports, events.CREDIT_REPORT_GENERATED, report, key=str(app.id)
    )
    wait_until(lambda: application_status(world.database_url, app.id) == "PRE_APPROVED")

    publisher = start_publisher(
        tmp_path,
        base_env(
            DATABASE_URL=world.database_url,
            **world.kafka.environment(),
            OUTBOX_POLL_INTERVAL_SECONDS="0.5",
        ),
    )
    try:
        records = read_records(world.kafka, decided_topic, until=1)
    finally:
        publisher.process.stop()

    assert [r.key for r in records] == [str(app.id).encode()]
    record = records[0]
    attributes = events.parse_headers(record.headers)
    assert attributes.type == events.APPLICATION_DECIDED
    assert attributes.source == "/prequal/decision-service"
    decided = events.parse_payload(attributes.type, record.value or b"")
    assert isinstance(decided, events.ApplicationDecided)
    assert decided.application_id == app.id
    assert decided.client_id == "test-client"
    assert decided.status == "PRE_APPROVED"
    assert decided.reason_codes == (
        "CREDIT_SCORE_MEETS_MINIMUM",
        "INCOME_SUFFICIENT_FOR_AMOUNT",
    )
    assert decided.policy_version == DecisionPolicy().version
    assert decided.offer is not None
    assert decided.offer.amount == Decimal("500000.00")
    assert decided.offer.term_months == 48
    # No personal data: not the score, not the income, nor the reason texts that quote them.
    body = json.loads(record.value or b"")
    assert set(body) == {
        "application_id",
        "client_id",
        "status",
        "reason_codes",
        "offer",
        "policy_version",
        "decided_at",
    }
