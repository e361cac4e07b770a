"""SQL of the API over psycopg 3 async connections (the adapter layer).

Plain statements keep a request to a handful of round trips; the table shapes are in
prequal.db.tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncClientCursor, AsyncConnection

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


def advisory_key(digest: bytes) -> int:
    """A signed 64-bit advisory-lock key from the first bytes of a keyed digest."""
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock(conn: Conn, key: int) -> None:
    """Serializes transactions on one key until commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


# One statement does the duplicate check and, only when it passes, every insert: the
# application, its `encrypt` audit row and its outbox event. Run after the PAN's advisory lock,
# its snapshot sees every earlier submission of the PAN that has committed. It returns no row
# for a duplicate.
SUBMIT_SQL = """
WITH recent AS (
    SELECT 1 FROM applications
    WHERE pan_blind_index = %(blind_index)s AND created_at > now() - interval '24 hours'
    LIMIT 1
), app AS (
    INSERT INTO applications (id, pan_ciphertext, pan_blind_index, first_name, last_name,
        date_of_birth, email, phone_number, requested_amount, monthly_income, loan_type)
    SELECT %(id)s, %(pan_ciphertext)s, %(blind_index)s, %(first_name)s, %(last_name)s,
        %(date_of_birth)s, %(email)s, %(phone_number)s, %(requested_amount)s,
        %(monthly_income)s, %(loan_type)s
    WHERE NOT EXISTS (SELECT 1 FROM recent)
    RETURNING id, created_at
), audit AS (
    INSERT INTO audit_log (application_id, action, actor, key_id)
    SELECT id, 'encrypt', %(actor)s, %(key_id)s FROM app
), event AS (
    INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload)
    SELECT %(event_id)s, id, %(lane)s, %(topic)s, %(event_type)s, %(payload)s::jsonb FROM app
)
SELECT created_at FROM app
"""


def submit_params(
    app: NewApplication, encrypt_audit: audit.AuditEntry, event: outbox.OutboxRow
) -> dict[str, Any]:
    return {
        "id": app.id,
        "pan_ciphertext": app.pan_ciphertext,
        "blind_index": app.pan_blind_index,
        "first_name": app.first_name,
        "last_name": app.last_name,
        "date_of_birth": app.date_of_birth,
        "email": app.email,
        "phone_number": app.phone_number,
        "requested_amount": app.requested_amount,
        "monthly_income": app.monthly_income,
        "loan_type": app.loan_type,
        "actor": encrypt_audit.actor,
        "key_id": encrypt_audit.key_id,
        "event_id": event.id,
        "lane": outbox.lane_for(event.aggregate_id),
        "topic": event.topic,
        "event_type": event.event_type,
        "payload": event.payload_json,
    }


LOCK_SQL = "SELECT pg_advisory_xact_lock(%(lock_key)s)"


async def submit(
    conn: Conn,
    lock_key: int,
    app: NewApplication,
    encrypt_audit: audit.AuditEntry,
    event: outbox.OutboxRow,
) -> datetime | None:
    """Inserts unless the PAN was submitted in the last 24 hours; returns created_at or None.

    The lock and the conditional insert go to the server as one simple-protocol query (client-
    side binding; psycopg quotes every value): PostgreSQL runs both in one implicit
    transaction, each statement with its own snapshot, so the insert's duplicate check sees
    every submission that committed before the lock was granted. One round trip per request.
    """
    params = {"lock_key": lock_key, **submit_params(app, encrypt_audit, event)}
    async with AsyncClientCursor(conn) as cur:
        await cur.execute(f"{LOCK_SQL}; {SUBMIT_SQL}", params)
        cur.nextset()
        row = await cur.fetchone()
    return None if row is None else row[0]


async def submit_in_transaction(
    conn: Conn, app: NewApplication, encrypt_audit: audit.AuditEntry, event: outbox.OutboxRow
) -> datetime | None:
    """The same, inside a caller's transaction that already holds the PAN's lock."""
    cur = await conn.execute(SUBMIT_SQL, submit_params(app, encrypt_audit, event))
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
        "created_at, updated_at FROM applications WHERE id = %s",
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
    )


async def record_audit(conn: Conn, entries: list[audit.AuditEntry]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(audit.INSERT_SQL, [e.params() for e in entries])
