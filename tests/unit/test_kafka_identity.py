"""The one place Kafka clients' security config is built, and the ACL topology as data."""

from __future__ import annotations

import pytest

from prequal.kafka_acl import Grant, PipelineTopics, pipeline_grants
from prequal.kafka_security import KafkaConnection
from prequal.settings import KafkaSettings


def test_sasl_ssl_config_names_mechanism_principal_and_ca() -> None:
    connection = KafkaConnection("b:9093", "SASL_SSL", "SCRAM-SHA-512", "publisher", "pw", "/ca")
    assert connection.config() == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "publisher",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca",
    }
    assert "pw" not in repr(connection)


def test_plaintext_sends_no_credentials() -> None:
    config = KafkaConnection("b:9092").config()
    assert config == {"bootstrap.servers": "b:9092", "security.protocol": "plaintext"}


def test_sasl_without_a_password_is_refused_by_name() -> None:
    settings = KafkaSettings(kafka_sasl_username="publisher")
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD") as refused:
        settings.kafka_connection()
    assert "publisher" not in str(refused.value)


def test_grants_follow_the_design_topology() -> None:
    topics = PipelineTopics.prefixed("p.")
    grants = set(
        pipeline_grants(
            topics, users={"credit-service": "ns.p.credit"}, groups={"credit-service": "g"}
        )
    )
    assert Grant("publisher", "TOPIC", "p.loan_applications_submitted", "WRITE") in grants
    assert Grant("ns.p.credit", "TOPIC", "p.loan_applications_submitted", "READ") in grants
    assert Grant("ns.p.credit", "GROUP", "g", "READ") in grants
    assert Grant("ns.p.credit", "TOPIC", "p.loan_applications_submitted_dlq", "WRITE") in grants
    # Only the publisher and prequalctl (replay) produce to an event topic.
    writers = {g.principal for g in grants if g.operation == "WRITE" and g.name in topics.all()}
    assert writers == {"publisher", "prequalctl"}
    # Each consumer reads exactly one event topic.
    reads = {
        g.principal: g.name
        for g in grants
        if g.operation == "READ" and g.resource == "TOPIC" and g.name in topics.all()
    }
    assert reads == {
        "ns.p.credit": "p.loan_applications_submitted",
        "decision-service": "p.credit_reports_generated",
        "webhook-dispatcher": "p.loan_applications_decided",
    }
