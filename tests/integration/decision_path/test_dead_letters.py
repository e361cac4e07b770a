"""Poison records go to `<topic>_dlq` with their reason while the consumer keeps going; records
failing for their own reasons are retried, then dead-lettered; an outage is never blamed on a
record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from decision_service.policy import DecisionPolicy
from devstack.postgres import Postgres
from prequal import dlq, events
from prequal.db import migrate
from prequal.kafka import InboundRecord, read_topic
from prequal.pan import to_transport
from tests.kafka_reader import read_records
from tests.polling import wait_until

from .conftest import (
    GROUP_CREDIT,
    GROUP_DECISION,
    World,
    application_status,
    insert_application,
    report_payload,
    submitted_payload,
)


def _by_reason(records: list[InboundRecord]) -> dict[str, InboundRecord]:
    return {str(r.header(dlq.ERROR_MESSAGE)): r for r in records}


def test_poison_submissions_are_dead_lettered_at_once_and_the_consumer_keeps_going(
    world: World,
) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    good = insert_application(database_url, keyring, pan="FGHIJ5678K")
    foreign = insert_application(database_url, keyring)
    credit = consumers.credit(topics, keyring)
    key = str(good.id)
    # 1. Not JSON at all.
    producer.event(topics.submitted, events.APPLICATION_SUBMITTED, b"{not json", key=key)
    # 2. A ce_type nobody consumes here.
    producer.event(topics.submitted, "loan.application.withdrawn.v1", b"{}", key=key)
    # 3. Valid JSON missing fields.
    producer.event(topics.submitted, events.APPLICATION_SUBMITTED, {"application_id": key}, key=key)
    # 4. A PAN sealed for another application: it fails authentication. (A key id the service
    # does not hold yet is an outage, not poison: test_key_rotation.py.)
    misdirected = submitted_payload(foreign, keyring)
    misdirected["pan_encrypted"] = to_transport(keyring.encrypt(foreign.pan, uuid.uuid4()))
    producer.event(topics.submitted, events.APPLICATION_SUBMITTED, misdirected, key=str(foreign.id))
    # 5. No CloudEvents headers at all.
    producer.send(topics.submitted, key, b"{}", [])
    # And a good record behind them.
    producer.event(
        topics.submitted, events.APPLICATION_SUBMITTED, submitted_payload(good, keyring), key=key
    )

    dead = read_records(world.kafka, dlq.dlq_topic(topics.submitted), until=5)
    assert len(dead) == 5
    classes = sorted(str(r.header(dlq.ERROR_CLASS)) for r in dead)
    assert classes == sorted(
        [
            "InvalidEnvelopeError",  # bad JSON
            "PoisonRecordError",  # unknown type
            "InvalidEnvelopeError",  # missing fields
            "PoisonRecordError",  # undecryptable PAN
            "InvalidEnvelopeError",  # no headers
        ]
    )
    reasons = " | ".join(_by_reason(dead))
    assert "unexpected event type 'loan.application.withdrawn.v1'" in reasons
    assert "lacks CloudEvents headers" in reasons
    assert "is invalid" in reasons
    assert "belongs to another application" in reasons
    # Where each one was: its partition and offset in the original topic, by ce_id.
    originals = {
        r.header("ce_id"): (str(r.partition), str(r.offset))
        for r in read_records(world.kafka, topics.submitted, until=6)
    }
    started = datetime.now(UTC) - timedelta(minutes=5)
    for record in dead:
        assert record.header(dlq.ORIGINAL_TOPIC) == topics.submitted
        assert record.header(dlq.CONSUMER_GROUP) == GROUP_CREDIT
        assert record.header(dlq.ATTEMPTS) == "1"
        position = (record.header(dlq.ORIGINAL_PARTITION), record.header(dlq.ORIGINAL_OFFSET))
        # (The one record without headers is the one under None.)
        assert position == originals[record.header("ce_id")]
        failed_at = datetime.strptime(str(record.header(dlq.FAILED_AT)), "%Y-%m-%dT%H:%M:%SZ")
        assert started <= failed_at.replace(tzinfo=UTC) <= datetime.now(UTC)
        assert good.pan not in str(record.headers)
        assert foreign.pan not in str(record.headers)
    undecryptable = next(
        r for r in dead if "another application" in str(r.header(dlq.ERROR_MESSAGE))
    )
    assert undecryptable.key == str(foreign.id).encode()
    assert undecryptable.header("ce_type") == events.APPLICATION_SUBMITTED  # original headers

    wait_until(
        lambda: (
            credit.sample(
                "consumer_records_total",
                topic=topics.submitted,
                group=GROUP_CREDIT,
                outcome="processed",
            )
            == 1
        )
    )
    assert credit.sample("dlq_records_total", topic=dlq.dlq_topic(topics.submitted)) == 5
    with psycopg.connect(database_url) as conn:
        # Nothing of a dead-lettered record was kept but the audit of its failed decryption,
        # naming the event and the service: no inbox row, no report, no successful decrypt.
        audits = conn.execute(
            "SELECT action, outcome, principal, purpose, event_id::text, key_id "
            "FROM audit_log WHERE application_id = %s",
            (foreign.id,),
        ).fetchall()
    failed_event = undecryptable.header("ce_id")
    assert audits == [("decrypt", "failed", "credit-service", "credit-scoring", failed_event, "v2")]


def test_a_report_for_an_unknown_application_is_dead_lettered(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    known = insert_application(database_url, keyring)
    ghost = insert_application(database_url, keyring)
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM applications WHERE id = %s", (ghost.id,))
    consumers.decision(topics)
    producer.event(
        topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(ghost, 700),
        key=str(ghost.id),
    )
    # A report keyed by one application about another: poison of its own kind.
    producer.event(
        topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(known, 700),
        key=str(ghost.id),
    )
    producer.event(
        topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(known, 700),
        key=str(known.id),
    )
    letters = read_records(world.kafka, dlq.dlq_topic(topics.reports), until=2)
    mismatch = next(r for r in letters if "does not match" in str(r.header(dlq.ERROR_MESSAGE)))
    assert mismatch.header(dlq.ERROR_CLASS) == "PoisonRecordError"
    (dead,) = [r for r in letters if r is not mismatch]
    assert dead.header(dlq.ERROR_CLASS) == "UnknownApplicationError"
    assert str(ghost.id) in str(dead.header(dlq.ERROR_MESSAGE))
    assert dead.header(dlq.CONSUMER_GROUP) == GROUP_DECISION
    wait_until(lambda: application_status(database_url, known.id) == "PRE_APPROVED")


def test_a_record_failing_for_its_own_reasons_is_retried_then_dead_lettered(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    # income × term overflows max_approved_amount numeric(16,2): PostgreSQL refuses every time.
    huge = insert_application(
        database_url,
        keyring,
        monthly_income=Decimal("999999999999.00"),
        requested_amount=Decimal(1000),
    )
    fine = insert_application(database_url, keyring)
    decision = consumers.decision(topics, DecisionPolicy(term_months=600))
    for app in (huge, fine):
        producer.event(
            topics.reports,
            events.CREDIT_REPORT_GENERATED,
            report_payload(app, 700),
            key=str(app.id),
        )
    (dead,) = read_records(world.kafka, dlq.dlq_topic(topics.reports), until=1)
    assert dead.header(dlq.ERROR_CLASS) == "NumericValueOutOfRange"
    assert dead.header(dlq.ATTEMPTS) == "3"
    wait_until(lambda: application_status(database_url, fine.id) == "PRE_APPROVED")
    assert application_status(database_url, huge.id) == "PENDING"
    assert (
        decision.sample(
            "consumer_records_total",
            topic=topics.reports,
            group=GROUP_DECISION,
            outcome="retried",
        )
        == 2
    )


def test_a_postgresql_outage_holds_records_without_dead_lettering_them(
    world: World, private_postgres: Postgres
) -> None:
    # The server stopped here is this module's own: a restart that failed would not take the
    # session's PostgreSQL, and every later test, with it.
    postgres = private_postgres
    database_url = postgres.create_database("dp_outage")
    migrate.upgrade(database_url)
    keyring, topics, producer, consumers = (
        world.keyring,
        world.topics,
        world.producer,
        world.consumers,
    )
    apps = [insert_application(database_url, keyring) for _ in range(3)]
    decision = consumers.decision(topics, database_url=database_url)
    warm = insert_application(database_url, keyring)
    producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(warm, 700), key=str(warm.id)
    )
    wait_until(lambda: application_status(database_url, warm.id) == "PRE_APPROVED")
    postgres.stop()
    try:
        for app in apps:
            producer.event(
                topics.reports,
                events.CREDIT_REPORT_GENERATED,
                report_payload(app, 700),
                key=str(app.id),
            )
        wait_until(
            lambda: (
                decision.sample(
                    "consumer_records_total",
                    topic=topics.reports,
                    group=GROUP_DECISION,
                    outcome="retried",
                )
                >= 2
            )
        )
    finally:
        postgres.start()
    for app in apps:
        wait_until(lambda app=app: application_status(database_url, app.id) == "PRE_APPROVED")
    assert decision.sample("dlq_records_total", topic=dlq.dlq_topic(topics.reports)) == 0
    assert read_topic(world.kafka, dlq.dlq_topic(topics.reports)) == []
    processed = {"topic": topics.reports, "group": GROUP_DECISION, "outcome": "processed"}
    assert decision.sample("consumer_records_total", **processed) == 1 + len(apps)
