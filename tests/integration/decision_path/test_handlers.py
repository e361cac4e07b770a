"""credit-service and decision-service handlers in the consumer runtime, against real
PostgreSQL and Kafka: effects, the inbox, optimistic locking."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg

from credit_service.handler import report_id
from decision_service.policy import DecisionPolicy
from prequal import events
from tests.polling import wait_until

from .conftest import GROUP_CREDIT, World, insert_application, report_payload, submitted_payload


def _outbox_reports(database_url: str, application_id: uuid.UUID) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT id, topic, event_type, payload FROM outbox_events "
            "WHERE aggregate_id = %s AND event_type = %s",
            (application_id, events.CREDIT_REPORT_GENERATED),
        ).fetchall()


def _application(database_url: str, application_id: uuid.UUID) -> tuple[object, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, credit_score, decision_reason, max_approved_amount, version "
            "FROM applications WHERE id = %s",
            (application_id,),
        ).fetchone()
    assert row is not None
    return row


def test_credit_service_writes_one_report_and_one_audited_decryption_per_event(
    world: World,
) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    app = insert_application(database_url, keyring, pan="ABCDE1234F")
    credit = consumers.credit(topics, keyring)
    event_id = producer.event(
        topics.submitted,
        events.APPLICATION_SUBMITTED,
        submitted_payload(app, keyring),
        key=str(app.id),
    )
    rows = wait_until(lambda: _outbox_reports(database_url, app.id))
    assert len(rows) == 1
    row_id, topic, event_type, payload = rows[0]
    assert row_id == report_id(event_id)
    assert topic == topics.reports
    assert event_type == events.CREDIT_REPORT_GENERATED
    assert isinstance(payload, dict)
    assert payload["credit_score"] == 790
    assert payload["application_id"] == str(app.id)
    assert not any(name.startswith("pan") for name in payload)
    with psycopg.connect(database_url) as conn:
        audits = conn.execute(
            "SELECT action, actor, key_id, principal, event_id, purpose, outcome "
            "FROM audit_log WHERE application_id = %s",
            (app.id,),
        ).fetchall()
        inbox = conn.execute(
            "SELECT count(*) FROM processed_messages WHERE consumer_group = %s AND event_id = %s",
            (GROUP_CREDIT, event_id),
        ).fetchone()
    assert audits == [
        ("decrypt", "credit-service", "v2", "credit-service", event_id, "credit-scoring", "ok")
    ]
    assert inbox == (1,)
    assert credit.sample("credit_score_sum") == 790

    # The same event again (a re-send by the publisher lands at a new offset): a duplicate.
    producer.event(
        topics.submitted,
        events.APPLICATION_SUBMITTED,
        submitted_payload(app, keyring),
        key=str(app.id),
        event_id=event_id,
    )
    wait_until(
        lambda: (
            credit.sample(
                "consumer_records_total",
                topic=topics.submitted,
                group=GROUP_CREDIT,
                outcome="duplicate",
            )
            == 1
        )
    )
    assert len(_outbox_reports(database_url, app.id)) == 1
    with psycopg.connect(database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM audit_log WHERE application_id = %s", (app.id,)
        ).fetchone()
    assert count == (1,)
    assert (
        credit.sample(
            "consumer_records_total",
            topic=topics.submitted,
            group=GROUP_CREDIT,
            outcome="processed",
        )
        == 1
    )


def test_one_event_twice_in_one_batch_is_applied_once(world: World) -> None:
    """Both copies are on the topic before the consumer starts, so one poll returns both."""
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    apps = [insert_application(database_url, keyring) for _ in range(3)]
    twice = apps[0]
    event_id = uuid.uuid4()
    for app in [twice, *apps[1:], twice]:
        world.producer.event(
            topics.submitted,
            events.APPLICATION_SUBMITTED,
            submitted_payload(app, keyring),
            key=str(app.id),
            event_id=event_id if app is twice else None,
        )
    credit = world.consumers.credit(topics, keyring)

    def outcome(name: str) -> float:
        return credit.sample(
            "consumer_records_total", topic=topics.submitted, group=GROUP_CREDIT, outcome=name
        )

    wait_until(lambda: outcome("processed") + outcome("duplicate") == 4)
    assert (outcome("processed"), outcome("duplicate")) == (3, 1)
    assert all(len(_outbox_reports(database_url, app.id)) == 1 for app in apps)
    with psycopg.connect(database_url) as conn:
        audits = conn.execute(
            "SELECT count(*) FROM audit_log WHERE application_id = %s", (twice.id,)
        ).fetchone()
    assert audits == (1,)


def test_decision_service_moves_pending_to_final_with_reason_and_version(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    approved = insert_application(
        database_url, keyring, monthly_income=Decimal(85_000), requested_amount=Decimal(500_000)
    )
    review = insert_application(
        database_url, keyring, monthly_income=Decimal(10_000), requested_amount=Decimal(480_000)
    )
    rejected = insert_application(database_url, keyring)
    decision = consumers.decision(topics)
    for app, given in ((approved, 700), (review, 700), (rejected, 610)):
        producer.event(
            topics.reports,
            events.CREDIT_REPORT_GENERATED,
            report_payload(app, given),
            key=str(app.id),
        )
    wait_until(lambda: _application(database_url, rejected.id)[0] != "PENDING")
    wait_until(lambda: _application(database_url, review.id)[0] != "PENDING")
    wait_until(lambda: _application(database_url, approved.id)[0] != "PENDING")

    status, score, reason, max_amount, version = _application(database_url, approved.id)
    assert (status, score, max_amount, version) == (
        "PRE_APPROVED",
        700,
        Decimal("4080000.00"),
        2,
    )
    assert isinstance(reason, str)
    assert "700" in reason
    assert "48 months" in reason
    status, _score, reason, max_amount, _version = _application(database_url, review.id)
    assert (status, max_amount) == ("MANUAL_REVIEW", None)
    assert "review" in str(reason)
    status, score, reason, _max, _version = _application(database_url, rejected.id)
    assert (status, score) == ("REJECTED", 610)
    assert "below the minimum of 650" in str(reason)
    for status in ("PRE_APPROVED", "MANUAL_REVIEW", "REJECTED"):
        assert decision.sample("applications_decided_total", status=status) == 1


def test_configured_minimum_score_decides(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    app = insert_application(database_url, keyring)
    consumers.decision(topics, DecisionPolicy(min_credit_score=750, term_months=12))
    producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(app, 749), key=str(app.id)
    )
    wait_until(lambda: _application(database_url, app.id)[0] != "PENDING")
    status, _score, reason, _max, _version = _application(database_url, app.id)
    assert status == "REJECTED"
    assert "below the minimum of 750" in str(reason)


def test_a_recent_application_from_another_client_is_rejected_before_the_rules(
    world: World,
) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    app = insert_application(database_url, keyring, recent_application_elsewhere=True)
    world.consumers.decision(topics)
    world.producer.event(  # a score that the rules would pre-approve
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(app, 790), key=str(app.id)
    )
    wait_until(lambda: _application(database_url, app.id)[0] != "PENDING")
    status, score, reason, max_amount, _version = _application(database_url, app.id)
    assert (status, score, max_amount) == ("REJECTED", 790, None)
    assert "another channel in the last 24 hours" in str(reason)
    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT reason_codes FROM decisions WHERE application_id = %s", (app.id,)
        ).fetchone()
    assert stored is not None
    assert stored[0][0] == "RECENT_APPLICATION_EXISTS"


def test_an_optimistic_lock_conflict_is_resolved_by_reading_again(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    app = insert_application(database_url, keyring)
    decision = consumers.decision(topics)
    with psycopg.connect(database_url) as writer:
        # A concurrent writer holds the row and changes its version while the decision is made.
        writer.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (app.id,))
        writer.execute(
            "UPDATE applications SET version = version + 1, updated_at = now() WHERE id = %s",
            (app.id,),
        )
        producer.event(
            topics.reports,
            events.CREDIT_REPORT_GENERATED,
            report_payload(app, 700),
            key=str(app.id),
        )
        # Wait until the decision's UPDATE (which read version 1) is blocked on our row lock.
        with psycopg.connect(database_url, autocommit=True) as observer:
            wait_until(
                lambda: (
                    observer.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'UPDATE applications SET status%%'"
                    ).fetchone()
                    == (1,)
                )
            )
        writer.commit()
    wait_until(lambda: _application(database_url, app.id)[0] != "PENDING")
    status, _score, _reason, _max, version = _application(database_url, app.id)
    assert status == "PRE_APPROVED"
    assert version == 3  # 1 → 2 by the concurrent writer, → 3 by the decision after re-reading
    assert decision.sample("decision_version_conflicts_total") == 1
    assert (
        decision.sample(
            "consumer_records_total",
            topic=topics.reports,
            group="decision-service",
            outcome="processed",
        )
        == 1
    )


def test_a_final_application_is_never_changed_again(world: World) -> None:
    database_url, keyring, topics = world.database_url, world.keyring, world.topics
    producer, consumers = world.producer, world.consumers
    app = insert_application(database_url, keyring)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE applications SET status = 'REJECTED', decision_reason = 'by hand', "
            "version = 2 WHERE id = %s",
            (app.id,),
        )
    decision = consumers.decision(topics)
    producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(app, 800), key=str(app.id)
    )
    wait_until(lambda: decision.sample("decision_already_final_total") == 1)
    assert _application(database_url, app.id) == ("REJECTED", None, "by hand", None, 2)
