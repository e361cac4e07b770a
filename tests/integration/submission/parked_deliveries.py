"""Running a real webhook dispatcher over deliveries parked by hand, for the tests of sealed
signing secrets: one delivery per endpoint, a Deliverer holding the given opener, and
HOOKS_HOST resolving to loopback only for it (the receiver listens there)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from prequal import egress, sealing
from tests.polling import wait_until
from webhook_dispatcher.delivery import Deliverer, DeliveryMetrics, DeliveryPolicy

HOOKS_HOST = "hooks.example.test"  # resolves nowhere but in the dispatcher's resolver below


def _resolver(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
    if host != HOOKS_HOST:
        raise socket.gaierror(socket.EAI_NONAME, "unknown")
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]


def deliver_parked(
    database_url: str, opener: sealing.Opener, endpoint_ids: Iterable[uuid.UUID]
) -> None:
    """Parks one delivery per endpoint and runs a deliverer holding `opener` until each was
    attempted; each must be DELIVERED (a receiver that cannot verify answers 400, so delivered
    means verified)."""
    parked = {uuid.uuid4(): endpoint_id for endpoint_id in endpoint_ids}
    with psycopg.connect(database_url) as conn:
        for delivery, endpoint_id in parked.items():
            conn.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, application_id, "
                'payload) VALUES (%s, %s, %s, %s, \'{"type": "test"}\')',
                (delivery, endpoint_id, uuid.uuid4(), uuid.uuid4()),
            )
    policy = DeliveryPolicy(
        timeout=3.0,
        max_attempts=1,
        poll_interval=0.1,
        allowed_networks=egress.parse_networks("127.0.0.0/8"),
    )
    deliverer = Deliverer(
        lambda: psycopg.connect(database_url, autocommit=True),
        policy,
        DeliveryMetrics(CollectorRegistry()),
        opener,
        resolver=_resolver,
    )
    thread = threading.Thread(target=deliverer.run, daemon=True)
    thread.start()
    try:

        def statuses() -> dict[str, str]:
            with psycopg.connect(database_url) as conn:
                rows = conn.execute(
                    "SELECT status, last_error FROM webhook_deliveries WHERE id = ANY(%s)",
                    (list(parked),),
                ).fetchall()
            return {str(s): str(e) for s, e in rows}

        wait_until(lambda: "PENDING" not in statuses(), what="every delivery to be attempted")
        assert set(statuses()) == {"DELIVERED"}, statuses()
    finally:
        deliverer.stop()
        thread.join(10)
