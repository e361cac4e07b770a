"""SQL of the API over psycopg 3 async connections (the adapter layer).

A submission is one call of the `submit_application` database function (one round trip);
the table shapes are in prequal.db.tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from prequal import audit, outbox

Conn = AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class NewApplication:
    id: uuid.UUID
    client_id: str
    pan_masked: str
    pan_ciphertext: bytes
    pan_blind_index: bytes
    first_name: str
    last_name: str
    date_of_birth: date
    email: str
    phone_number: str
    requested_amount: Decimal
    monthly_income: Decimal
    loan_type: str


@dataclass(frozen=True)
class StoredResponse:
    request_hmac: bytes
    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True)
class ApplicationRow:
    id: uuid.UUID
    status: str
    pan_masked: str | None
    credit_score: int | None
    decision_reason: str | None
    max_approved_amount: Decimal | None
    created_at: datetime
    updated_at: datetime


def advisory_key(digest: bytes) -> int:
    """A signed 64-bit advisory-lock key from the first bytes of a keyed digest."""
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock(conn: Conn, key: int) -> None:
    """Serializes transactions on one key until commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


# The duplicate rule and the three inserts (application, `encrypt` audit row, outbox event) are
# one database function (migration 0002): one prepared call, one round trip per submission.
SUBMIT_SQL = (
    "SELECT created_at, existing_id FROM submit_application(%s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s, %s, %s, %s, %s, %s, %s::smallint, %s, %s, %s::jsonb)"
)


@dataclass(frozen=True)
class SubmitOutcome:
    """Either the new row's created_at, or the id of this client's recent application."""

    created_at: datetime | None
    existing_id: uuid.UUID | None


def submit_params(
    lock_key: int, app: NewApplication, encrypt_audit: audit.AuditEntry, event: outbox.OutboxRow
) -> tuple[Any, ...]:
    return (
        lock_key,
        app.id,
        app.client_id,
        app.pan_masked,
        app.pan_ciphertext,
        app.pan_blind_index,
        app.first_name,
        app.last_name,
        app.date_of_birth,
        app.email,
        app.phone_number,
        app.requested_amount,
        app.monthly_income,
        app.loan_type,
        encrypt_audit.actor,
        encrypt_audit.key_id,
        event.id,
        outbox.lane_for(event.aggregate_id),
        event.topic,
        event.event_type,
        event.payload_json,
    )


async def submit(
    conn: Conn,
    lock_key: int,
    app: NewApplication,
    encrypt_audit: audit.AuditEntry,
    event: outbox.OutboxRow,
) -> SubmitOutcome:
    """Stores the submission unless this client submitted the PAN in the last 24 hours.

    Returns created_at, or the existing application's id for this client's duplicate. Another
    client's recent application of the PAN is flagged on the row, not refused. `lock_key` is
    the PAN's advisory-lock key: the
    function takes the lock before it looks, so concurrent submissions of one PAN queue and only
    the first passes. Alone on an autocommit connection it is its own transaction; inside a
    caller's transaction the lock is held until that one ends.
    """
    cur = await conn.execute(SUBMIT_SQL, submit_params(lock_key, app, encrypt_audit, event))
    row = await cur.fetchone()
    assert row is not None  # a function with OUT parameters always returns one row
    return SubmitOutcome(row[0], row[1])


async def stored_response(
    conn: Conn, key_hmac: bytes, retention_seconds: float
) -> StoredResponse | None:
    """The stored answer for a key, unless it is older than the retention (then it is gone)."""
    cur = await conn.execute(
        "SELECT request_hmac, status_code, response FROM idempotency_keys "
        "WHERE key_hmac = %s AND created_at > now() - make_interval(secs => %s)",
        (key_hmac, retention_seconds),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return StoredResponse(bytes(row[0]), int(row[1]), dict(row[2]))


async def store_response(
    conn: Conn,
    key_hmac: bytes,
    *,
    request_hmac: bytes,
    application_id: uuid.UUID,
    status_code: int,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        # An expired row not purged yet is replaced.
        "INSERT INTO idempotency_keys (key_hmac, request_hmac, application_id, status_code, "
        "response) VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT (key_hmac) DO UPDATE SET "
        "request_hmac = excluded.request_hmac, application_id = excluded.application_id, "
        "status_code = excluded.status_code, response = excluded.response, created_at = now()",
        (key_hmac, request_hmac, application_id, status_code, json.dumps(body)),
    )


async def purge_idempotency_keys(conn: Conn, retention_seconds: float) -> int:
    """Deletes the keys older than the retention; returns how many went."""
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)",
        (retention_seconds,),
    )
    return cur.rowcount


async def get_application(
    conn: Conn, application_id: uuid.UUID, client_id: str
) -> ApplicationRow | None:
    """The application if `client_id` owns it: another client's id reads as unknown (404)."""
    cur = await conn.execute(
        "SELECT id, status, pan_masked, credit_score, decision_reason, max_approved_amount, "
        "created_at, updated_at FROM applications WHERE id = %s AND client_id = %s",
        (application_id, client_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return ApplicationRow(
        id=row[0],
        status=row[1],
        pan_masked=row[2],
        credit_score=row[3],
        decision_reason=row[4],
        max_approved_amount=row[5],
        created_at=row[6],
        updated_at=row[7],
    )


async def record_audit(conn: Conn, entries: list[audit.AuditEntry]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(audit.INSERT_SQL, [e.params() for e in entries])
