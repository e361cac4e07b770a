"""The webhook dispatcher as tests run it: the parking consumer and the deliverer on the test's
topic and database, endpoints registered as the API does (secret sealed to the dispatcher's
key pair), and what the deliveries table says."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from prequal import dlq, egress, events, sealing, webhooks
from prequal.kafka import create_topics
from prequal.webhook_secrets import seal_secret
from webhook_dispatcher.delivery import Deliverer, DeliveryMetrics, DeliveryPolicy
from webhook_dispatcher.handler import ParkingHandler

from .conftest import World
from .webhook_receiver import Receiver

# The dispatcher's own key pair (WEBHOOK_SEALING_*), apart from the credit service's.
_PAIR = sealing.generate_key_pair()
SEALER = sealing.Sealer({"w1": _PAIR.public}, "w1")
OPENER = sealing.Opener({"w1": _PAIR.private})
# The receivers listen on loopback: the tests allow it, as `make run` does.
LOOPBACK = egress.parse_networks("127.0.0.0/8,::1/128")

GROUP = "webhook-dispatcher"


@dataclass
class Dispatcher:
    world: World
    topic: str
    client_id: str = field(default_factory=lambda: f"client-{uuid.uuid4().hex[:8]}")

    def endpoint(self, receiver: Receiver, name: str, script: list[int] | None = None) -> uuid.UUID:
        secret = webhooks.new_secret()
        url = receiver.endpoint(name, secret, script)
        return register(self.world.database_url, self.client_id, url, secret)

    def endpoint_at(self, url: str, secret: str | None = None) -> uuid.UUID:
        """An endpoint at any URL (the receiver's under another name, or none at all)."""
        return register(
            self.world.database_url, self.client_id, url, secret or webhooks.new_secret()
        )

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
    """As the API registers: the secret stored only sealed, bound to the endpoint id."""
    endpoint_id = uuid.uuid4()
    sealed = seal_secret(SEALER, secret, endpoint_id)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            webhooks.INSERT_ENDPOINT_SQL, (endpoint_id, client_id, url, sealed)
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


def start_dispatcher(
    world: World, policy: DeliveryPolicy, resolver: egress.Resolver | None = None
) -> Iterator[Dispatcher]:
    topic = f"decided-{uuid.uuid4().hex[:8]}"
    create_topics(world.kafka, {topic: 3, dlq.dlq_topic(topic): 1})
    wake = threading.Event()
    world.consumers.start(topic, GROUP, ParkingHandler(wake))
    deliverer = Deliverer(
        lambda: psycopg.connect(world.database_url, autocommit=True),
        policy,
        DeliveryMetrics(CollectorRegistry()),
        OPENER,
        wake,
        resolver=resolver,
    )
    thread = threading.Thread(target=deliverer.run, name="deliverer", daemon=True)
    thread.start()
    try:
        yield Dispatcher(world, topic)
    finally:
        deliverer.stop()
        thread.join(policy.timeout + 10)


running = contextlib.contextmanager(start_dispatcher)


FAST = DeliveryPolicy(
    timeout=3.0,
    max_attempts=3,
    backoff_initial=0.3,
    backoff_max=2.0,
    workers=4,
    endpoint_concurrency=1,
    poll_interval=0.1,
    allowed_networks=LOOPBACK,
)
