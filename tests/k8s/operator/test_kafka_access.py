"""The operator gives each service of a pipeline its own Kafka principal: a SCRAM user whose
password is in a Secret it creates, and ACLs that let the principal do what the design lets
it and nothing else (checked by the broker itself)."""

from __future__ import annotations

import dataclasses
import uuid

from devstack.kafka import Kafka
from prequal.kafka import create_producer
from prequal.kafka_acl import CREDIT_SERVICE, PUBLISHER, SERVICE_PRINCIPALS
from prequal.kafka_security import KafkaConnection
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body


def _produce(connection: KafkaConnection, topic: str) -> str | None:
    outcome: list[str | None] = []
    producer = create_producer(connection, f"lp-acl-{uuid.uuid4().hex[:6]}")
    producer.produce(topic, b"key", b"value", [], outcome.append)
    producer.flush(30)
    assert len(outcome) == 1, "no delivery report in 30 s"
    return outcome[0]


def test_each_service_gets_a_principal_its_secret_and_only_its_grants(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    ns = pipelines.namespace
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{ns}."))
    pipelines.wait_condition("retail", "KafkaAccessReady", "True")

    # KafkaAccessReady is True only once every Secret, user and ACL is in place.
    secrets: dict[str, dict[str, str]] = {}
    for role in SERVICE_PRINCIPALS:
        data = pipelines.secret(f"retail-kafka-{role}")
        assert data is not None, role
        secrets[role] = data
        assert data["username"] == f"{ns}.retail.{role}"
        assert len(data["password"]) >= 32
        assert data["password"] not in operator.log()

    def as_role(role: str) -> KafkaConnection:
        return dataclasses.replace(
            kafka.connection(),
            sasl_username=secrets[role]["username"],
            sasl_password=secrets[role]["password"],
        )

    submitted = f"{ns}.loan_applications_submitted"
    assert _produce(as_role(PUBLISHER), submitted) is None
    refused = _produce(as_role(CREDIT_SERVICE), submitted)
    assert refused is not None
    assert "authorization failed" in refused.lower()
    assert _produce(as_role(CREDIT_SERVICE), f"{submitted}_dlq") is None
