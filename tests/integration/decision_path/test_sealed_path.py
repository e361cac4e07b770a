"""The sealed path: credit-service opens a data key sealed to it, scores, and audits; once the
applicant is erased, a copy of the event (Kafka, a DLQ replay) is dead-lettered at once with its
reason, never retried and never a crash."""

from __future__ import annotations

import psycopg
from prometheus_client import CollectorRegistry

from credit_service.handler import CreditHandler, CreditMetrics, Keys
from prequal import dlq, erasure, events, sealing
from prequal.kafka import read_topic
from tests.kafka_reader import read_records
from tests.polling import wait_until

from .conftest import (
    GROUP_CREDIT,
    World,
    application_status,
    insert_sealed_application,
    sealed_payload,
)


def _erase(database_url: str, application_id: object) -> None:
    with psycopg.connect(database_url) as conn:
        params = erasure.Erasure(application_id, None, "test", "retention").params()  # type: ignore[arg-type]
        assert conn.execute(erasure.ERASE_SQL, params).fetchone() is not None


def test_a_sealed_application_is_opened_scored_and_audited(world: World) -> None:
    app, pan_ciphertext = insert_sealed_application(world.database_url, world.sealing.sealer)
    credit = world.consumers.credit(world.topics, world.keyring, world.sealing.opener)
    world.producer.event(
        world.topics.submitted,
        events.APPLICATION_SUBMITTED,
        sealed_payload(app, pan_ciphertext),
        key=str(app.id),
    )
    wait_until(lambda: credit.sample("credit_reports_total") == 1)
    with psycopg.connect(world.database_url) as conn:
        audited = conn.execute(
            "SELECT action, key_id FROM audit_log WHERE application_id = %s", (app.id,)
        ).fetchall()
    assert ("decrypt", "s1") in audited


def test_an_erased_applications_event_is_dead_lettered_with_its_reason(world: World) -> None:
    erased, erased_pan = insert_sealed_application(world.database_url, world.sealing.sealer)
    kept, kept_pan = insert_sealed_application(world.database_url, world.sealing.sealer)
    _erase(world.database_url, erased.id)
    credit = world.consumers.credit(world.topics, world.keyring, world.sealing.opener)
    for app, blob in ((erased, erased_pan), (kept, kept_pan)):
        world.producer.event(
            world.topics.submitted,
            events.APPLICATION_SUBMITTED,
            sealed_payload(app, blob),
            key=str(app.id),
        )
    dead = read_records(world.kafka, dlq.dlq_topic(world.topics.submitted), until=1)
    assert len(dead) == 1
    assert dead[0].key == str(erased.id).encode()
    assert dead[0].header(dlq.ERROR_CLASS) == "PersonalDataErasedError"
    assert dead[0].header(dlq.ATTEMPTS) == "1"  # never retried
    assert "PERSONAL_DATA_ERASED" in str(dead[0].header(dlq.ERROR_MESSAGE))
    assert dead[0].header(dlq.CONSUMER_GROUP) == GROUP_CREDIT
    wait_until(lambda: credit.sample("credit_reports_total") == 1)  # the consumer kept going
    assert application_status(world.database_url, erased.id) == "PENDING"
    with psycopg.connect(world.database_url) as conn:
        row = conn.execute(
            "SELECT processing_issue_code, pan_ciphertext, personal_ciphertext, "
            "personal_data_erased_at FROM applications WHERE id = %s",
            (erased.id,),
        ).fetchone()
        keys = conn.execute(
            "SELECT count(*) FROM application_data_keys WHERE application_id = %s", (erased.id,)
        ).fetchone()
    assert row is not None
    assert row[0] == "PersonalDataErasedError"
    assert row[1] is None
    assert row[2] is None
    assert row[3] is not None
    assert keys == (0,)


def test_a_data_key_sealed_to_a_pair_not_distributed_yet_waits_for_it(world: World) -> None:
    """An API pod sealing with a new active key before this pod's Secret has its private key:
    the record is retried as an outage of this process, never dead-lettered."""
    new = sealing.generate_key_pair()
    old_keys = Keys(world.sealing.opener)
    mounted = [old_keys]
    rotated = sealing.Sealer({"s2": new.public}, "s2")
    app, blob = insert_sealed_application(world.database_url, rotated)
    registry = CollectorRegistry()
    handler = CreditHandler(
        old_keys, world.topics.reports, CreditMetrics(registry), reload_keys=lambda: mounted[0]
    )
    credit = world.consumers.start(world.topics.submitted, GROUP_CREDIT, handler, registry=registry)
    world.producer.event(
        world.topics.submitted,
        events.APPLICATION_SUBMITTED,
        sealed_payload(app, blob),
        key=str(app.id),
    )
    dlq_topic = dlq.dlq_topic(world.topics.submitted)
    labels = {"topic": world.topics.submitted, "group": GROUP_CREDIT}
    wait_until(
        lambda: (
            credit.sample("dlq_records_total", topic=dlq_topic) > 0
            or credit.sample("consumer_records_total", **labels, outcome="retried") >= 3
        )
    )
    assert credit.sample("dlq_records_total", topic=dlq_topic) == 0
    # The kubelet brings the rotated Secret (both private keys) to the pod.
    mounted[0] = Keys(sealing.Opener({**world.sealing.private_keys, "s2": new.private}))
    wait_until(lambda: credit.sample("credit_reports_total") == 1)
    assert read_topic(world.kafka, dlq_topic) == []
