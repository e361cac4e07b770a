"""webhook-dispatcher against real PostgreSQL, Kafka and an HTTP receiver on loopback: decided
events reach every endpoint of the owning client, signed per Standard Webhooks; failures are
retried with backoff, then dead (and replayable); a hanging endpoint delays no other."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from prequal import dlq, events, webhooks
from prequal.kafka import create_topics
from prequalctl.main import main as prequalctl
from tests.polling import wait_until
from webhook_dispatcher.delivery import Deliverer, DeliveryMetrics, DeliveryPolicy
from webhook_dispatcher.handler import ParkingHandler

from .conftest import World
from .webhook_receiver import HANG, Receiver, serve_receiver

GROUP = "webhook-dispatcher"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@dataclass
class Dispatcher:
    world: World
    topic: str
    client_id: str = field(default_factory=lambda: f"client-{uuid.uuid4().hex[:8]}")

    def endpoint(self, receiver: Receiver, name: str, script: list[int] | None = None) -> uuid.UUID:
        secret = webhooks.new_secret()
        url = receiver.endpoint(name, secret, script)
        return register(self.world.database_url, self.client_id, url, secret)

    def decide(self, client_id: str | None = None) -> tuple[uuid.UUID, uuid.UUID]:
        """A decided event on the topic, as the publisher sends it; (event id, application id)."""
        application_id = uuid.uuid4()
        payload = {
            "application_id": str(application_id),
            "client_id": client_id or self.client_id,
            "status": "REJECTED",
            "reason_codes": ["CREDIT_SCORE_BELOW_MINIMUM"],
            "offer": None,
            "policy_version": "0123456789abcdef",
            "decided_at": datetime.now(UTC).isoformat(),
        }
        event_id = self.world.producer.event(
            self.topic, events.APPLICATION_DECIDED, payload, key=str(application_id)
        )
        return event_id, application_id


def register(database_url: str, client_id: str, url: str, secret: str) -> uuid.UUID:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            webhooks.INSERT_ENDPOINT_SQL, (uuid.uuid4(), client_id, url, secret)
        ).fetchone()
    assert row is not None
    endpoint_id: uuid.UUID = row[0]
    return endpoint_id


def deliveries(database_url: str, endpoint_id: uuid.UUID) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, event_id, status, attempts, last_error FROM webhook_deliveries "
            "WHERE endpoint_id = %s ORDER BY created_at",
            (endpoint_id,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def statuses(database_url: str, endpoint_id: uuid.UUID) -> list[str]:
    return [d["status"] for d in deliveries(database_url, endpoint_id)]


def start_dispatcher(world: World, policy: DeliveryPolicy) -> Iterator[Dispatcher]:
    topic = f"decided-{uuid.uuid4().hex[:8]}"
    create_topics(world.bootstrap, {topic: 3, dlq.dlq_topic(topic): 1})
    wake = threading.Event()
    world.consumers.start(topic, GROUP, ParkingHandler(wake))
    deliverer = Deliverer(
        lambda: psycopg.connect(world.database_url, autocommit=True),
        policy,
        DeliveryMetrics(CollectorRegistry()),
        wake,
    )
    thread = threading.Thread(target=deliverer.run, name="deliverer", daemon=True)
    thread.start()
    try:
        yield Dispatcher(world, topic)
    finally:
        deliverer.stop()
        thread.join(policy.timeout + 10)


FAST = DeliveryPolicy(
    timeout=3.0,
    max_attempts=3,
    backoff_initial=0.3,
    backoff_max=2.0,
    workers=4,
    endpoint_concurrency=1,
    poll_interval=0.1,
)


@pytest.fixture
def dispatcher(world: World) -> Iterator[Dispatcher]:
    yield from start_dispatcher(world, FAST)


def test_a_decision_reaches_every_endpoint_of_its_client_signed_and_no_other(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    first = dispatcher.endpoint(receiver, "first")
    second = dispatcher.endpoint(receiver, "second")
    stranger = register(
        world.database_url, "another-client", receiver.url("stranger"), webhooks.new_secret()
    )
    event_id, application_id = dispatcher.decide()

    wait_until(lambda: receiver.of("first") and receiver.of("second"))
    for name, endpoint in (("first", first), ("second", second)):
        [got] = receiver.of(name)
        assert got.verified, "the signature did not verify with the reference library"
        assert got.headers["webhook-id"] == str(event_id)
        body = json.loads(got.body)
        assert body["type"] == "loan.application.decided.v1"
        assert body["data"]["application_id"] == str(application_id)
        assert body["data"]["reason_codes"] == ["CREDIT_SCORE_BELOW_MINIMUM"]
        wait_until(lambda e=endpoint: statuses(world.database_url, e) == ["DELIVERED"])
        assert deliveries(world.database_url, endpoint)[0]["attempts"] == 1
    assert receiver.of("stranger") == []
    assert deliveries(world.database_url, stranger) == []


def test_a_failing_endpoint_is_retried_with_growing_backoff_under_one_webhook_id(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    endpoint = dispatcher.endpoint(receiver, "flaky", [500, 503])
    event_id, _ = dispatcher.decide()

    wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    got = receiver.of("flaky")
    assert len(got) == 3
    assert {r.headers["webhook-id"] for r in got} == {str(event_id)}
    assert all(r.verified for r in got)
    first_gap, second_gap = got[1].at - got[0].at, got[2].at - got[1].at
    assert first_gap >= FAST.backoff_initial
    assert second_gap >= 2 * FAST.backoff_initial
    assert deliveries(world.database_url, endpoint)[0]["attempts"] == 3


def test_a_delivery_is_dead_after_the_stated_attempts_and_a_replay_delivers_it(
    dispatcher: Dispatcher,
    receiver: Receiver,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = dispatcher.endpoint(receiver, "down", [500] * FAST.max_attempts)
    dispatcher.decide()

    wait_until(lambda: statuses(world.database_url, endpoint) == ["DEAD"])
    [dead] = deliveries(world.database_url, endpoint)
    assert dead["attempts"] == FAST.max_attempts
    assert dead["last_error"] == "HTTP 500"
    assert len(receiver.of("down")) == FAST.max_attempts

    # The receiver is fixed (its script is used up: it answers 204 now); replay.
    monkeypatch.setenv("DATABASE_URL", world.database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    assert prequalctl(["webhooks", "replay", "--delivery", str(dead["id"])]) == 0
    wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    assert len(receiver.of("down")) == FAST.max_attempts + 1


def test_a_hanging_endpoint_times_out_and_delays_no_other_endpoint(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    hanging = dispatcher.endpoint(receiver, "hanging", [HANG] * 10)
    healthy = dispatcher.endpoint(receiver, "healthy")
    dispatcher.decide()
    dispatcher.decide()

    # While the first attempt at `hanging` is held open, `healthy` gets both decisions, and
    # `hanging` never has more than its one concurrent attempt.
    wait_until(lambda: receiver.of("hanging"))
    wait_until(lambda: statuses(world.database_url, healthy) == ["DELIVERED"] * 2)
    assert len(receiver.of("healthy")) == 2
    assert len(receiver.of("hanging")) == 1
    assert all(d["last_error"] is None for d in deliveries(world.database_url, hanging))

    # The held attempt ends at the timeout and is parked with the reason.
    wait_until(
        lambda: any(
            d["last_error"] == f"timed out after {FAST.timeout:g} s"
            for d in deliveries(world.database_url, hanging)
        )
    )
