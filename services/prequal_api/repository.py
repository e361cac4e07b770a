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
    pan_ciphertext: bytes
    credit_score: int | None
    decision_reason: str | None
    max_approved_amount: Decimal | None
    created_at: datetime
    updated_at: datetime
    # (code, message, since) of the latest dead letter, until a final status (migration 0004).
    processing_issue: tuple[str, str, datetime] | None = None


def advisory_key(digest: bytes) -> int:
    """A signed 64-bit advisory-lock key from the first bytes of a keyed digest."""
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock(conn: Conn, key: int) -> None:
    """Serializes transactions on one key until commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


# The duplicate rule and the three inserts (application, `encrypt` audit row, outbox event) are
# one database function (migration 0002): one prepared call, one round trip per submission.
SUBMIT_SQL = (
    "SELECT submit_application(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s::smallint, %s, %s, %s::jsonb)"
)


def submit_params(
    lock_key: int, app: NewApplication, encrypt_audit: audit.AuditEntry, event: outbox.OutboxRow
) -> tuple[Any, ...]:
    return (
        lock_key,
        app.id,
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
) -> datetime | None:
    """Stores the submission unless the PAN was submitted in the last 24 hours.

    Returns created_at, or None for a duplicate. `lock_key` is the PAN's advisory-lock key: the
    function takes the lock before it looks, so concurrent submissions of one PAN queue and only
    the first passes. Alone on an autocommit connection it is its own transaction; inside a
    caller's transaction the lock is held until that one ends.
    """
    cur = await conn.execute(SUBMIT_SQL, submit_params(lock_key, app, encrypt_audit, event))
    row = await cur.fetchone()
    return None if row is None else row[0]


async def stored_response(conn: Conn, key: str) -> StoredResponse | None:
    cur = await conn.execute(
        "SELECT request_hmac, status_code, response FROM idempotency_keys WHERE key = %s", (key,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return StoredResponse(bytes(row[0]), int(row[1]), dict(row[2]))


async def store_response(
    conn: Conn,
    key: str,
    *,
    request_hmac: bytes,
    application_id: uuid.UUID,
    status_code: int,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (key, request_hmac, application_id, status_code, response) "
        "VALUES (%s, %s, %s, %s, %s::jsonb)",
        (key, request_hmac, application_id, status_code, json.dumps(body)),
    )


async def get_application(conn: Conn, application_id: uuid.UUID) -> ApplicationRow | None:
    cur = await conn.execute(
        "SELECT id, status, pan_ciphertext, credit_score, decision_reason, max_approved_amount, "
        "created_at, updated_at, processing_issue_code, processing_issue_message, "
        "processing_issue_since FROM applications WHERE id = %s",
        (application_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return ApplicationRow(
        id=row[0],
        status=row[1],
        pan_ciphertext=bytes(row[2]),
        credit_score=row[3],
        decision_reason=row[4],
        max_approved_amount=row[5],
        created_at=row[6],
        updated_at=row[7],
        processing_issue=(row[8], row[9], row[10]) if row[8] is not None else None,
    )


async def record_audit(conn: Conn, entries: list[audit.AuditEntry]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(audit.INSERT_SQL, [e.params() for e in entries])
