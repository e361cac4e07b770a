"""The publisher's SQL: claim a batch, settle it once Kafka confirmed, measure and purge.

A claim runs inside the batch's transaction. By default it deletes the rows as it claims them
(`DELETE … RETURNING`): the deletion only takes effect if the transaction commits, which the
publisher does after Kafka confirmed every record, and otherwise rolls back. With
`OUTBOX_DELETE_PUBLISHED=false` rows are locked, then marked `published_at` and purged later.
Either way the subquery's FOR UPDATE SKIP LOCKED keeps two claimers off the same rows, and the
partial index on unpublished rows serves the oldest-first scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """A claimed row, its Kafka-bound parts already bytes (see _COLUMNS)."""

    id: bytes
    aggregate_id: bytes
    topic: str
    event_type: str
    payload: bytes
    ce_time: bytes


# Read in binary, with the parts Kafka needs as bytea: PostgreSQL formats the uuids and the
# RFC 3339 time, and Python neither decodes nor re-encodes 100,000 strings per drain.
_COLUMNS = (
    "convert_to(id::text, 'UTF8'), convert_to(aggregate_id::text, 'UTF8'), topic, event_type, "
    "convert_to(payload::text, 'UTF8'), convert_to(to_char(created_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'UTF8')"
)
_OLDEST_UNPUBLISHED = (
    "FROM outbox_events WHERE published_at IS NULL AND lane = ANY(%s) "
    "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED"
)
# By ctid: a TID scan of exactly the locked rows (an `id IN (…)` join would scan the table).
CLAIM_FOR_DELETE_SQL = (
    "DELETE FROM outbox_events WHERE ctid = ANY(ARRAY(SELECT ctid "  # noqa: S608 - constants
    f"{_OLDEST_UNPUBLISHED})) RETURNING seq, {_COLUMNS}"
)
CLAIM_FOR_MARK_SQL = f"SELECT seq, {_COLUMNS} {_OLDEST_UNPUBLISHED}"


def claim(conn: Conn, lanes: Sequence[int], limit: int, *, delete: bool) -> list[OutboxRecord]:
    """Up to `limit` of the oldest unpublished rows of `lanes`, held by the open transaction."""
    sql = CLAIM_FOR_DELETE_SQL if delete else CLAIM_FOR_MARK_SQL
    with conn.cursor(binary=True) as cur:
        cur.execute(sql, (list(lanes), limit))
        rows = cur.fetchall()
    rows.sort(key=lambda row: row[0])  # RETURNING has no ORDER BY: restore seq order
    return [OutboxRecord(*row[1:]) for row in rows]


def mark_published(conn: Conn, ids: Sequence[bytes]) -> None:
    if ids:
        conn.execute(
            "UPDATE outbox_events SET published_at = now() WHERE id = ANY(%s::uuid[])",
            ([i.decode() for i in ids],),
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
