"""The publisher's SQL: claim a batch, mark what Kafka confirmed, measure and purge the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: uuid.UUID
    aggregate_id: uuid.UUID
    topic: str
    event_type: str
    payload: str
    created_at: datetime


# Oldest first within this instance's lanes; SKIP LOCKED keeps two claimers from ever taking
# the same row even if lanes were misconfigured. The partial index on unpublished rows serves it.
CLAIM_SQL = (
    "SELECT id, aggregate_id, topic, event_type, payload::text, created_at FROM outbox_events "
    "WHERE published_at IS NULL AND lane = ANY(%s) ORDER BY seq LIMIT %s "
    "FOR UPDATE SKIP LOCKED"
)


def claim(conn: Conn, lanes: Sequence[int], limit: int) -> list[OutboxRecord]:
    """Locks up to `limit` unpublished rows until the caller's transaction ends."""
    with conn.cursor() as cur:
        cur.execute(CLAIM_SQL, (list(lanes), limit))
        return [OutboxRecord(*row) for row in cur.fetchall()]


def mark_published(conn: Conn, ids: Sequence[uuid.UUID]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox_events SET published_at = now() WHERE id = ANY(%s)", (list(ids),)
        )


def purge_published(conn: Conn, older_than_seconds: float, limit: int = 10_000) -> int:
    cur = conn.execute(
        "DELETE FROM outbox_events WHERE id IN (SELECT id FROM outbox_events "
        "WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => %s) "
        "LIMIT %s)",
        (older_than_seconds, limit),
    )
    return cur.rowcount


def backlog(conn: Conn) -> tuple[int, float]:
    """Unpublished rows and the age in seconds of the oldest one (0 when none)."""
    row = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
        "FROM outbox_events WHERE published_at IS NULL"
    ).fetchone()
    assert row is not None
    return int(row[0]), float(row[1])
