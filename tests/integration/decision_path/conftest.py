"""Fixtures of the decision path: a migrated database, fresh topics per test, PAN keys, and the
consumer runtime running in a thread against the real PostgreSQL and Kafka."""

from __future__ import annotations

import base64
import gc
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from credit_service.handler import CreditHandler, CreditMetrics, Keys, decrypt_only
from decision_service.handler import DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy
from devstack.kafka import Kafka
from devstack.postgres import Postgres
from prequal import dlq, events, sealing
from prequal.consumer import (
    ConsumerMetrics,
    ConsumerRuntime,
    DeadLetterWriter,
    Handler,
    RetryPolicy,
)
from prequal.db import migrate
from prequal.kafka import create_consumer, create_producer, create_topics
from prequal.kafka_security import KafkaConnection
from prequal.pan import Keyring, blind_index, to_transport
from tests.applications import synthetic_pan

GROUP_CREDIT = "credit-service"
GROUP_DECISION = "decision-service"


@pytest.fixture(scope="module")
def database_url(postgres: Postgres, request: pytest.FixtureRequest) -> str:
    name = "dp_" + re.sub(r"[^a-z0-9]+", "_", request.module.__name__.split(".")[-1].lower())
    url = postgres.create_database(name)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring({"v1": os.urandom(32), "v2": os.urandom(32)}, active_key_id="v2")


@dataclass(frozen=True)
class SealingKeys:
    """A sealing key pair: the API's side seals, the credit service's side opens."""

    sealer: sealing.Sealer
    opener: sealing.Opener
    private_keys: dict[str, bytes]


@pytest.fixture(scope="module")
def sealing_keys() -> SealingKeys:
    pair = sealing.generate_key_pair()
    private = {"s1": pair.private}
    return SealingKeys(sealing.Sealer({"s1": pair.public}, "s1"), sealing.Opener(private), private)


@dataclass(frozen=True)
class Topics:
    submitted: str
    reports: str


@pytest.fixture
def topics(kafka: Kafka) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    names = Topics(f"submitted-{suffix}", f"reports-{suffix}")
    create_topics(
        kafka.connection(),
        {
            names.submitted: 3,
            names.reports: 3,
            dlq.dlq_topic(names.submitted): 1,
            dlq.dlq_topic(names.reports): 1,
        },
    )
    return names


@dataclass(frozen=True)
class Application:
    id: uuid.UUID
    pan: str
    monthly_income: Decimal
    requested_amount: Decimal
    loan_type: str


def insert_application(
    database_url: str,
    keyring: Keyring,
    *,
    pan: str | None = None,
    monthly_income: Decimal = Decimal(85_000),
    requested_amount: Decimal = Decimal(500_000),
    loan_type: str = "PERSONAL",
    recent_application_elsewhere: bool = False,
) -> Application:
    """A PENDING application row as the API wrote it before migration 0007: keyring PAN
    ciphertext and plaintext personal columns, which such rows keep by design until erased
    (docs/data-protection.md). Its fixed values carry no generator mark on purpose: the leak
    scan after the suite looks for what the platform writes today."""
    app = Application(
        uuid.uuid4(), pan or synthetic_pan(), monthly_income, requested_amount, loan_type
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO applications (id, client_id, recent_application_elsewhere, "
            "pan_ciphertext, pan_blind_index, first_name, last_name, date_of_birth, email, "
            "phone_number, requested_amount, monthly_income, loan_type) VALUES (%s, "
            "'test-client', %s, %s, %s, 'Asha', 'Rao', '1990-04-12', 'asha@example.com', "
            "'9876543210', %s, %s, %s)",
            (
                app.id,
                recent_application_elsewhere,
                keyring.encrypt(app.pan, app.id),
                blind_index(app.pan, os.urandom(32)),
                requested_amount,
                monthly_income,
                loan_type,
            ),
        )
    return app


def insert_sealed_application(
    database_url: str, sealer: sealing.Sealer, *, pan: str | None = None
) -> tuple[Application, bytes]:
    """A PENDING application row as the API writes it since migration 0007, and its PAN
    ciphertext (under the data key) for the event."""
    app = Application(
        uuid.uuid4(), pan or synthetic_pan(), Decimal(85_000), Decimal(500_000), "PERSONAL"
    )
    sealed = sealer.seal(app.id, app.pan, b'{"first_name":"Synthetic"}')
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO applications (id, client_id, pan_ciphertext, pan_blind_index, "
            "personal_ciphertext, requested_amount, monthly_income, loan_type) "
            "VALUES (%s, 'test-client', %s, %s, %s, %s, %s, %s)",
            (
                app.id,
                sealed.pan,
                blind_index(app.pan, os.urandom(32)),
                sealed.personal,
                app.requested_amount,
                app.monthly_income,
                app.loan_type,
            ),
        )
        conn.execute(
            "INSERT INTO application_data_keys (application_id, key_id, sealed_key) "
            "VALUES (%s, %s, %s)",
            (app.id, sealed.key_id, sealed.sealed_key),
        )
    return app, sealed.pan


def sealed_payload(app: Application, pan_ciphertext: bytes) -> dict[str, Any]:
    return {
        "application_id": str(app.id),
        "pan_encrypted": to_transport(pan_ciphertext),
        "monthly_income": str(app.monthly_income),
        "requested_amount": str(app.requested_amount),
        "loan_type": app.loan_type,
        "submitted_at": datetime.now(UTC).isoformat(),
    }


def submitted_payload(app: Application, keyring: Keyring) -> dict[str, Any]:
    return {
        "application_id": str(app.id),
        "pan_encrypted": to_transport(keyring.encrypt(app.pan, app.id)),
        "monthly_income": str(app.monthly_income),
        "requested_amount": str(app.requested_amount),
        "loan_type": app.loan_type,
        "submitted_at": datetime.now(UTC).isoformat(),
    }


def report_payload(app: Application, score: int) -> dict[str, Any]:
    return {
        "application_id": str(app.id),
        "credit_score": score,
        "monthly_income": str(app.monthly_income),
        "requested_amount": str(app.requested_amount),
        "loan_type": app.loan_type,
        "generated_at": datetime.now(UTC).isoformat(),
    }


class Producer:
    """Writes records as the outbox publisher does (binary CloudEvents), or broken on purpose."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._producer = create_producer(connection, "decision-path-tests")

    def send(
        self,
        topic: str,
        key: str | bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]],
    ) -> None:
        errors: list[str] = []
        self._producer.produce(
            topic,
            key.encode() if isinstance(key, str) else key,
            value,
            headers,
            lambda err: errors.append(err) if err else None,
        )
        assert self._producer.flush(30) == 0
        assert not errors, errors

    def event(
        self,
        topic: str,
        event_type: str,
        payload: dict[str, Any] | bytes,
        *,
        key: str,
        event_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        event_id = event_id or uuid.uuid4()
        value = payload if isinstance(payload, bytes) else _json(payload)
        self.send(topic, key, value, events.binary_headers(event_id, event_type, datetime.now(UTC)))
        return event_id


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def producer(kafka: Kafka) -> Iterator[Producer]:
    made = Producer(kafka.connection())
    yield made
    del made
    gc.collect()


@dataclass
class RunningConsumer:
    runtime: ConsumerRuntime[Any]
    registry: CollectorRegistry
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return value or 0.0

    def stop(self, timeout: float = 30) -> None:
        self.runtime.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the consumer did not stop in time"
        assert not self.errors, self.errors


class ConsumerFactory:
    """Starts runtimes in threads; everything started is stopped at the end of the test."""

    def __init__(self, connection: KafkaConnection, database_url: str) -> None:
        self.kafka = connection
        self.database_url = database_url
        self.started: list[RunningConsumer] = []

    def start(
        self,
        topic: str,
        group: str,
        handler: Handler[Any],
        *,
        retry: RetryPolicy | None = None,
        database_url: str | None = None,
        registry: CollectorRegistry | None = None,
    ) -> RunningConsumer:
        registry = registry or CollectorRegistry()
        url = database_url or self.database_url
        runtime: ConsumerRuntime[Any] = ConsumerRuntime(
            topic=topic,
            group=group,
            consumer=create_consumer(self.kafka, group, f"{group}-test"),
            handler=handler,
            dead_letters=DeadLetterWriter(create_producer(self.kafka, f"{group}-dlq-test")),
            connect=lambda: psycopg.connect(url, autocommit=True, connect_timeout=3),
            metrics=ConsumerMetrics(registry),
            retry=retry or RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2),
            outage_backoff=RetryPolicy(initial_backoff=0.2, max_backoff=1.0),
            lag_interval=0.5,
        )
        running = RunningConsumer(runtime, registry, threading.Thread(target=lambda: None))

        def _run() -> None:
            try:
                runtime.run()
            except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
                running.errors.append(exc)

        running.thread = threading.Thread(target=_run, name=f"consumer-{group}", daemon=True)
        running.thread.start()
        self.started.append(running)
        return running

    def credit(
        self,
        topics: Topics,
        keyring: Keyring,
        opener: sealing.Opener | None = None,
        **kwargs: Any,
    ) -> RunningConsumer:
        """credit-service's handler; its metrics and the runtime's share one registry.

        `keyring` is the legacy (decrypt-only) keyring, `opener` the sealing private keys.
        """
        registry = CollectorRegistry()
        keys = Keys(opener or sealing.Opener({}), decrypt_only(keyring.keys))
        handler = CreditHandler(keys, topics.reports, CreditMetrics(registry))
        return self.start(topics.submitted, GROUP_CREDIT, handler, registry=registry, **kwargs)

    def decision(
        self,
        topics: Topics,
        policy: DecisionPolicy | None = None,
        challenger: DecisionPolicy | None = None,
        **kwargs: Any,
    ) -> RunningConsumer:
        registry = CollectorRegistry()
        handler = DecisionHandler(
            policy or DecisionPolicy(), DecisionMetrics(registry), challenger=challenger
        )
        return self.start(topics.reports, GROUP_DECISION, handler, registry=registry, **kwargs)


@pytest.fixture
def consumers(kafka: Kafka, database_url: str) -> Iterator[ConsumerFactory]:
    factory = ConsumerFactory(kafka.connection(), database_url)
    try:
        yield factory
    finally:
        for running in factory.started:
            running.runtime.stop()
        for running in factory.started:
            running.thread.join(30)
        factory.started.clear()
        gc.collect()  # librdkafka clients go now, not when Kafka is already gone


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class World:
    """What a decision-path test works with, in one fixture."""

    database_url: str
    keyring: Keyring
    topics: Topics
    producer: Producer
    consumers: ConsumerFactory
    kafka: KafkaConnection  # the broker's super user: test topics have no ACLs
    sealing: SealingKeys


@pytest.fixture
def world(  # noqa: PLR0917 - composes the fixtures once for every test
    database_url: str,
    keyring: Keyring,
    topics: Topics,
    producer: Producer,
    consumers: ConsumerFactory,
    kafka: Kafka,
    sealing_keys: SealingKeys,
) -> World:
    return World(
        database_url, keyring, topics, producer, consumers, kafka.connection(), sealing_keys
    )


def application_status(database_url: str, application_id: uuid.UUID) -> str:
    """The application's status column, read on a connection of its own."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status FROM applications WHERE id = %s", (application_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])
