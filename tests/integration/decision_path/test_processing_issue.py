"""A dead letter's reason is recorded on its application, and a replay that succeeds clears it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg

from decision_service.rules import DecisionPolicy
from prequal import dlq, events
from tests.kafka_reader import read_records
from tests.polling import wait_until

from .conftest import World, insert_application, report_payload


def _row(database_url: str, application_id: uuid.UUID) -> tuple[Any, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, processing_issue_code, processing_issue_message, "
            "processing_issue_since FROM applications WHERE id = %s",
            (application_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_dead_letter_is_recorded_on_the_application_until_a_replay_succeeds(
    world: World,
) -> None:
    topics, url = world.topics, world.database_url
    app = insert_application(
        url,
        world.keyring,
        monthly_income=Decimal("999999999999.00"),
        requested_amount=Decimal(1000),
    )
    broken = world.consumers.decision(topics, DecisionPolicy(term_months=600))
    world.producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(app, 700), key=str(app.id)
    )
    (dead,) = read_records(world.kafka, dlq.dlq_topic(topics.reports), until=1)
    wait_until(lambda: _row(url, app.id)[1] is not None)
    status, code, message, since = _row(url, app.id)
    assert (status, code) == ("PENDING", "NumericValueOutOfRange")
    assert "decision-service could not process" in message
    assert "after 3 attempt(s)" in message
    assert since is not None
    broken.stop()
    world.consumers.decision(topics)  # the cause fixed (a policy the record passes)
    world.producer.send(
        topics.reports,
        dead.key or b"",
        dead.value or b"",
        list(dlq.replay_headers(dead.headers, "test")),
    )
    wait_until(lambda: _row(url, app.id)[0] != "PENDING")
    assert _row(url, app.id)[1:] == (None, None, None)
