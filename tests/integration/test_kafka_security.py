"""Kafka clients authenticate (SASL/SCRAM-SHA-512 over TLS) and the ACLs let each principal do
only what DESIGN.md's topology gives it: the broker, not the client, refuses the rest."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from devstack.kafka import Kafka
from prequal.dlq import dlq_topic
from prequal.kafka import create_producer, create_topics
from prequal.kafka_acl import (
    CREDIT_SERVICE,
    DECISION_SERVICE,
    PUBLISHER,
    PipelineTopics,
    pipeline_grants,
)
from prequal.kafka_security import KafkaConnection


@pytest.fixture(scope="module")
def topics(kafka: Kafka) -> PipelineTopics:
    topics = PipelineTopics.prefixed(f"acl-{uuid.uuid4().hex[:8]}.")
    create_topics(
        kafka.connection(),
        {**dict.fromkeys(topics.all(), 1), **{dlq_topic(t): 1 for t in topics.all()}},
    )
    kafka.grant(pipeline_grants(topics))
    return topics


def _produce(connection: KafkaConnection, topic: str) -> str | None:
    """Produces one record; returns the delivery error text, None when the broker took it."""
    outcome: list[str | None] = []
    producer = create_producer(connection, f"acl-test-{uuid.uuid4().hex[:6]}")
    producer.produce(topic, b"key", b"value", [], outcome.append)
    producer.flush(30)
    assert len(outcome) == 1, "no delivery report in 30 s"
    return outcome[0]


def _first_error_or_record(
    connection: KafkaConnection, topic: str, group: str
) -> KafkaError | bytes:
    """Joins `group` on `topic` and returns the first record's value or the first error."""
    consumer = Consumer({**connection.config(), "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                return error
            value: bytes = msg.value()
            return value
        raise AssertionError("neither a record nor an error in 30 s")
    finally:
        consumer.close()


def test_the_publisher_produces_and_the_credit_service_consumes_its_topic(
    kafka: Kafka, topics: PipelineTopics
) -> None:
    assert _produce(kafka.connection(PUBLISHER), topics.submitted) is None
    got = _first_error_or_record(kafka.connection(CREDIT_SERVICE), topics.submitted, CREDIT_SERVICE)
    assert got == b"value"
    assert _produce(kafka.connection(CREDIT_SERVICE), dlq_topic(topics.submitted)) is None


def test_a_consumer_may_not_produce_to_the_topic_it_reads(
    kafka: Kafka, topics: PipelineTopics
) -> None:
    error = _produce(kafka.connection(CREDIT_SERVICE), topics.submitted)
    assert error is not None
    assert "authorization failed" in error.lower()
    # Nor to another consumer's DLQ.
    error = _produce(kafka.connection(CREDIT_SERVICE), dlq_topic(topics.reports))
    assert error is not None
    assert "authorization failed" in error.lower()


def test_a_consumer_may_not_read_another_services_topic(
    kafka: Kafka, topics: PipelineTopics
) -> None:
    assert _produce(kafka.connection(PUBLISHER), topics.submitted) is None
    got = _first_error_or_record(
        kafka.connection(DECISION_SERVICE), topics.submitted, DECISION_SERVICE
    )
    assert isinstance(got, KafkaError)
    assert got.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_consumer_may_not_join_another_services_group(
    kafka: Kafka, topics: PipelineTopics
) -> None:
    got = _first_error_or_record(
        kafka.connection(CREDIT_SERVICE), topics.submitted, DECISION_SERVICE
    )
    assert isinstance(got, KafkaError)
    assert got.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_a_wrong_password_is_refused(kafka: Kafka, topics: PipelineTopics) -> None:
    wrong = dataclasses.replace(kafka.connection(PUBLISHER), sasl_password="not-the-password")
    errors: list[KafkaError] = []
    producer = Producer({**wrong.config(), "error_cb": errors.append})
    producer.produce(topics.submitted, b"value")
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)
    assert errors, "no error reported in 30 s"
    assert errors[0].code() == KafkaError._AUTHENTICATION
    producer.purge()
