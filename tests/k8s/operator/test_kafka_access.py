"""The operator gives each service of a pipeline its own Kafka principal: a SCRAM user whose
password is in a Secret it creates, and ACLs that let the principal do what the design lets
it and nothing else (checked by the broker itself). Deleting the pipeline never waits for them
(no finalizer) and takes them away: at once when the operator sees the deletion and Kafka
answers (the user can no longer log in, its ACLs are gone, its Secrets follow; the key Secrets
stay), else by the orphan sweep once Kafka answers or the operator is back."""

from __future__ import annotations

import dataclasses
import time
import uuid

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from devstack.kafka import Kafka
from devstack.net import free_port
from prequal.kafka import create_producer
from prequal.kafka_acl import CREDIT_SERVICE, PUBLISHER, SERVICE_PRINCIPALS
from prequal.kafka_security import KafkaConnection
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for


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


def _scram_users(admin: AdminClient, users: list[str]) -> set[str]:
    """Which of these users the broker holds a SCRAM credential for."""
    present = set()
    futures = admin.describe_user_scram_credentials(users, request_timeout=10)
    assert isinstance(futures, dict)
    for user, future in futures.items():
        try:
            future.result(10)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.RESOURCE_NOT_FOUND:
                raise
            continue
        present.add(user)
    return present


def _acls_naming(admin: AdminClient, users: list[str]) -> list[AclBinding]:
    bindings: list[AclBinding] = []
    for user in users:
        query = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]
            ResourcePatternType.ANY,
            f"User:{user}",
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
        bindings += admin.describe_acls(query, request_timeout=10).result(10)
    return bindings


def _authentication_refused(connection: KafkaConnection, topic: str) -> bool:
    """A new client logging in as this user is refused by the broker (not merely slow)."""
    errors: list[KafkaError] = []
    producer = Producer({**connection.config(), "error_cb": errors.append})
    producer.produce(topic, b"value")
    deadline = time.monotonic() + 30
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)
    producer.purge()
    return bool(errors) and errors[0].code() == KafkaError._AUTHENTICATION


KEY_SECRETS = ("retail-pan-keys", "retail-pan-keys-api", "retail-pan-keys-index")


def test_deleting_a_pipeline_removes_its_users_acls_and_credentials_but_keeps_its_keys(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    ns = pipelines.namespace
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{ns}."))
    pipelines.wait_condition("retail", "KafkaAccessReady", "True")
    pipelines.wait_condition("retail", "SecretsReady", "True")
    assert not (pipelines.get("retail") or {})["metadata"].get("finalizers")
    users = [f"{ns}.retail.{role}" for role in SERVICE_PRINCIPALS]
    publisher = pipelines.secret("retail-kafka-publisher") or {}
    as_publisher = dataclasses.replace(
        kafka.connection(),
        sasl_username=publisher["username"],
        sasl_password=publisher["password"],
    )
    submitted = f"{ns}.loan_applications_submitted"
    assert _produce(as_publisher, submitted) is None  # the identity works before
    assert _scram_users(kafka_admin, users) == set(users)
    assert _acls_naming(kafka_admin, users)
    keys = {name: pipelines.secret(name) for name in KEY_SECRETS}
    assert all(keys.values())

    pipelines.delete("retail")
    wait_for(lambda: pipelines.get("retail") is None, 5, "the LoanPipeline to be gone at once")

    # Removed when the operator sees the deletion, before any sweep may (the sweep leaves a
    # pipeline the watch reported within its interval, 5 s here, alone; its deletion counts).
    wait_for(lambda: _scram_users(kafka_admin, users) == set(), 4, "no SCRAM credential")
    wait_for(lambda: _acls_naming(kafka_admin, users) == [], 10, "no ACL naming them")
    assert _authentication_refused(as_publisher, submitted)
    wait_for(
        lambda: all(
            pipelines.secret(f"retail-kafka-{role}") is None for role in SERVICE_PRINCIPALS
        ),
        30,
        "the credentials Secrets to follow their pipeline (garbage collector)",
    )
    assert {name: pipelines.secret(name) for name in KEY_SECRETS} == keys  # byte for byte
    [removed] = pipelines.events("KafkaAccessRemoved")
    assert removed.type == "Normal"
    assert publisher["password"] not in operator.log()


def _retail_and_keeper(pipelines: Pipelines, kafka: Kafka) -> tuple[list[str], set[str]]:
    """Two Ready pipelines on the same Kafka: `retail`, whose users a test expects swept, and
    `keeper`, whose users the sweep must leave alone. Returns both sets of user names."""
    ns = pipelines.namespace
    pipelines.create_db_secret("retail-db")
    pipelines.create_db_secret("keeper-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{ns}."))
    pipelines.create(pipeline_body("keeper", kafka.bootstrap, f"{ns}.keeper."))
    pipelines.wait_condition("retail", "KafkaAccessReady", "True")
    pipelines.wait_condition("keeper", "KafkaAccessReady", "True")
    users = [f"{ns}.retail.{role}" for role in SERVICE_PRINCIPALS]
    return users, {f"{ns}.keeper.{role}" for role in SERVICE_PRINCIPALS}


def test_kafka_unreachable_at_deletion_the_pipeline_goes_at_once_the_sweep_removes_its_users(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    ns = pipelines.namespace
    users, kept = _retail_and_keeper(pipelines, kafka)

    # The fault: the pipeline's Kafka address stops answering (it now names a closed port; the
    # session's broker is shared, and a stopped or frozen broker comes back too slowly here).
    nowhere = f"127.0.0.1:{free_port()}"
    pipelines.patch_spec("retail", {"kafka": {"bootstrapServers": nowhere}})
    pipelines.wait_condition("retail", "TopicsReady", "False", "KafkaUnreachable")
    pipelines.delete("retail")
    wait_for(lambda: pipelines.get("retail") is None, 5, "the LoanPipeline to be gone at once")
    wait_for(lambda: "its Kafka users stay on" in operator.log(), 30, "the failed cleanup logged")
    assert _scram_users(kafka_admin, users) == set(users)  # left behind, for now

    # The sweep reaches the real Kafka (through the keeper) and removes them within about two
    # intervals (5 s here) of the pipeline last being seen.
    wait_for(lambda: _scram_users(kafka_admin, users) == set(), 60, "the sweep to remove them")
    wait_for(lambda: _acls_naming(kafka_admin, users) == [], 10, "their ACLs gone")
    assert _scram_users(kafka_admin, sorted(kept)) == kept
    assert _acls_naming(kafka_admin, sorted(kept))
    assert f"removed SCRAM users {ns}.retail." in operator.log()


def test_users_of_a_pipeline_deleted_while_the_operator_is_gone_are_swept_at_start_up(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, kafka_admin: AdminClient
) -> None:
    users, kept = _retail_and_keeper(pipelines, kafka)

    operator.stop()
    try:
        pipelines.delete("retail")
        wait_for(lambda: pipelines.get("retail") is None, 5, "deletion without the operator")
        assert _scram_users(kafka_admin, users) == set(users)  # nobody removed them
    finally:
        operator.start()
    # A new process never saw "retail": its start-up sweep removes the users.
    wait_for(lambda: _scram_users(kafka_admin, users) == set(), 30, "the start-up sweep")
    wait_for(lambda: _acls_naming(kafka_admin, users) == [], 10, "their ACLs gone")
    assert _scram_users(kafka_admin, sorted(kept)) == kept
