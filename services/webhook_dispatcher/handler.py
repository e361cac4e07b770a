"""Parking a decided event: one delivery row per enabled endpoint of the owning client.

Nothing here talks HTTP, so the consumer never waits for a receiver: it inserts the rows in
the runtime's transaction (with the inbox row of the event) and commits; the deliverer
(`delivery.py`) sends them. The row's payload is the Standard Webhooks body: `type`,
`timestamp` and `data` (the event's payload as published).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg

from prequal.consumer import AfterCommit, PoisonRecordError
from prequal.events import (
    APPLICATION_DECIDED,
    ApplicationDecided,
    CloudEventAttributes,
    format_time,
    parse_payload,
)
from prequal.kafka import InboundRecord

log = logging.getLogger(__name__)

PARK_SQL = (
    "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, application_id, payload) "
    "SELECT gen_random_uuid(), id, %s, %s, %s::jsonb FROM webhook_endpoints "
    "WHERE client_id = %s AND enabled "
    "ON CONFLICT (endpoint_id, event_id) DO NOTHING"
)


@dataclass(frozen=True)
class ParkDeliveries:
    event_id: Any
    decided: ApplicationDecided
    body: str


class ParkingHandler:
    """The consumer's handler; `wake` tells the deliverer that rows were parked."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> ParkDeliveries:
        if event.type != APPLICATION_DECIDED:
            raise PoisonRecordError(f"unexpected event type {event.type!r} on {record.topic}")
        decided = parse_payload(event.type, record.value or b"")
        assert isinstance(decided, ApplicationDecided)
        if record.key != str(decided.application_id).encode():
            raise PoisonRecordError("record key does not match the payload's application_id")
        body = json.dumps(
            {
                "type": event.type,
                "timestamp": format_time(decided.decided_at),
                "data": json.loads(record.value or b""),
            }
        )
        return ParkDeliveries(event.id, decided, body)

    def apply(self, conn: psycopg.Connection[Any], command: ParkDeliveries) -> AfterCommit | None:
        decided = command.decided
        parked = conn.execute(
            PARK_SQL, (command.event_id, decided.application_id, command.body, decided.client_id)
        ).rowcount

        def committed() -> None:
            if parked:
                self.wake.set()
            log.info(
                "decision parked for %d endpoint(s)",
                parked,
                extra={"application_id": str(decided.application_id)},
            )

        return committed
