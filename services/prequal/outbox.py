"""Writing events to the transactional outbox, in the same transaction as the business row.

The SQL is plain text with psycopg placeholders so the async API and the synchronous consumers
share it. The publisher (its own process) turns rows into Kafka records.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prequal.db.tables import OUTBOX_LANES

NOTIFY_CHANNEL = "outbox_events"

INSERT_SQL = (
    "INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload) "
    "VALUES (%s, %s, %s, %s, %s, %s::jsonb)"
)

# Many rows in one statement: they travel as one JSON array (`rows_param`) that PostgreSQL
# types with jsonb_to_recordset, inserted in the array's order.
INSERT_ROWS_SQL = (
    "INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload) "
    "SELECT id, aggregate_id, lane, topic, event_type, payload::jsonb "
    "FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (id uuid, aggregate_id uuid, "
    "lane smallint, topic text, event_type text, payload text)) WITH ORDINALITY "
    "AS e(id, aggregate_id, lane, topic, event_type, payload, n) ORDER BY n"
)


def lane_for(aggregate_id: uuid.UUID) -> int:
    """A stable lane per application: every event of one application goes through one lane."""
    return aggregate_id.int % OUTBOX_LANES


@dataclass(frozen=True)
class OutboxRow:
    topic: str
    event_type: str
    aggregate_id: uuid.UUID
    payload_json: str
    id: uuid.UUID

    @classmethod
    def new(
        cls, topic: str, event_type: str, aggregate_id: uuid.UUID, payload_json: str
    ) -> OutboxRow:
        return cls(topic, event_type, aggregate_id, payload_json, uuid.uuid4())

    def params(self) -> tuple[object, ...]:
        return (
            self.id,
            self.aggregate_id,
            lane_for(self.aggregate_id),
            self.topic,
            self.event_type,
            self.payload_json,
        )


def rows_param(rows: Sequence[OutboxRow]) -> str:
    """The parameter of INSERT_ROWS_SQL: the rows as one JSON array."""
    return json.dumps(
        [
            {
                "id": str(row.id),
                "aggregate_id": str(row.aggregate_id),
                "lane": lane_for(row.aggregate_id),
                "topic": row.topic,
                "event_type": row.event_type,
                "payload": row.payload_json,
            }
            for row in rows
        ]
    )
