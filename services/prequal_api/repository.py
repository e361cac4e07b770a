"""SQL of the API over psycopg 3 async connections (the adapter layer).

A submission is one call of the `submit_application` database function (one round trip);
the table shapes are in prequal.db.tables.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from prequal import audit, erasure, outbox

Conn = AsyncConnection[tuple[Any, ...]]


@dataclass(frozen=True)
class NewApplication:
    id: uuid.UUID
    client_id: str
    pan_masked: str
    pan_ciphertext: bytes
    # The PAN's digest under every live index key, by key id, the active one first: the
    # active one is stored, all of them are checked and locked (prequal.blind_index).
    pan_indexes: dict[str, bytes]
    personal_ciphertext: bytes
    sealed_key: bytes
    requested_amount: Decimal
    monthly_income: Decimal
    loan_type: str


@dataclass(frozen=True)
class NewConsent:
    text_version: str
    captured_at: datetime
    channel: str


@dataclass(frozen=True)
class StoredResponse:
    index_key_id: str
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
    consent: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    # (code, message, since) of the latest dead letter, until a final status (migration 0004).
    processing_issue: tuple[str, str, datetime] | None = None
    # Set once the personal data is erased (migration 0007).
    personal_data_erased_at: datetime | None = None


async def lock(conn: Conn, keys: list[int]) -> None:
    """Serializes transactions on these keys (ascending, see blind_index.lock_keys) until commit
    or rollback."""
    for key in keys:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


# The duplicate rule and the three inserts (application, `encrypt` audit row, outbox event) are
# one database function (migration 0002); the consent and its `consent` audit row are written
# by the same statement when the function accepted the submission: one round trip in all.
SUBMIT_SQL = (
    "WITH submitted AS MATERIALIZED (SELECT created_at, existing_id FROM submit_application("
    "%s::bigint[], %s, %s, %s, %s, %s::bytea[], %s, %s, %s, %s, %s, %s, %s, "
    # The actor argument also sets who and why for the function's audit row (migration 0008).
    "audit_context(%s, %s, %s, %s), %s, %s, %s::smallint, %s, %s, %s::jsonb)), "
    "consent AS (INSERT INTO consents (application_id, soft_inquiry, text_version, captured_at, "
    "channel, actor) SELECT %s, true, %s, %s, %s, %s FROM submitted "
    "WHERE created_at IS NOT NULL RETURNING application_id, text_version, channel, actor), "
    "audited AS (INSERT INTO audit_log (application_id, action, actor, detail, principal, "
    "request_id, purpose) "
    "SELECT application_id, 'consent', actor, 'soft inquiry, text ' || text_version || "
    "' via ' || channel, %s, %s, %s FROM consent) "
    "SELECT created_at, existing_id FROM submitted"
)


def bigint_array(values: list[int]) -> str:
    """A `bigint[]` parameter as PostgreSQL's array literal, for a `%s::bigint[]` placeholder.

    psycopg picks a list's dumper by looking at its elements on every statement (about 15 µs a
    list, two lists per submission: 90 % of the submission's parameter dumping, measured in
    docs/benchmarks.md); a string costs it nothing, and the cast reads it as the same array."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def bytea_array(values: list[bytes]) -> str:
    """A `bytea[]` parameter as an array literal of hex bytea values (`{"\\\\x0a1b"}`), for a
    `%s::bytea[]` placeholder: see `bigint_array`."""
    return "{" + ",".join(f'"\\\\x{value.hex()}"' for value in values) + "}"


@dataclass(frozen=True)
class SubmitOutcome:
    """Either the new row's created_at, or the id of this client's recent application."""

    created_at: datetime | None
    existing_id: uuid.UUID | None


def submit_params(
    lock_keys: list[int],
    app: NewApplication,
    encrypt_audit: audit.AuditEntry,
    event: outbox.OutboxRow,
    consent: NewConsent,
) -> tuple[Any, ...]:
    active_key_id, active_index = next(iter(app.pan_indexes.items()))
    return (
        bigint_array(lock_keys),
        app.id,
        app.client_id,
        app.pan_masked,
        app.pan_ciphertext,
        bytea_array(list(app.pan_indexes.values())),
        active_index,
        active_key_id,
        app.personal_ciphertext,
        app.sealed_key,
        app.requested_amount,
        app.monthly_income,
        app.loan_type,
        encrypt_audit.actor,
        encrypt_audit.principal or encrypt_audit.actor,
        audit.bounded_request_id(encrypt_audit.request_id),
        encrypt_audit.purpose or audit.PURPOSE_SUBMISSION,
        encrypt_audit.key_id,
        event.id,
        outbox.lane_for(event.aggregate_id),
        event.topic,
        event.event_type,
        event.payload_json,
        app.id,
        consent.text_version,
        consent.captured_at,
        consent.channel,
        encrypt_audit.actor,
        encrypt_audit.principal or encrypt_audit.actor,
        audit.bounded_request_id(encrypt_audit.request_id),
        audit.PURPOSE_CONSENT,
    )


async def submit(
    conn: Conn,
    lock_keys: list[int],
    app: NewApplication,
    encrypt_audit: audit.AuditEntry,
    event: outbox.OutboxRow,
    *,
    consent: NewConsent,
) -> SubmitOutcome:
    """Stores the submission unless this client submitted the PAN in the last 24 hours.

    Returns created_at, or the existing application's id for this client's duplicate. Another
    client's recent application of the PAN is flagged on the row, not refused. `lock_keys` are
    the advisory-lock keys of the PAN's digests under every live index key: the function takes
    them before it looks, so concurrent submissions of one PAN queue and only the first passes,
    also between API pods that hold different active index keys. Alone on an autocommit
    connection it is its own transaction; inside a caller's transaction the locks are held
    until that one ends.
    """
    cur = await conn.execute(
        SUBMIT_SQL, submit_params(lock_keys, app, encrypt_audit, event, consent)
    )
    row = await cur.fetchone()
    assert row is not None  # a function with OUT parameters always returns one row
    return SubmitOutcome(row[0], row[1])


async def stored_response(
    conn: Conn, key_hmacs: list[bytes], retention_seconds: float
) -> StoredResponse | None:
    """The stored answer for a key under any live index key (the HMACs of the key under each),
    unless it is older than the retention (then it is gone)."""
    cur = await conn.execute(
        "SELECT index_key_id, request_hmac, status_code, response FROM idempotency_keys "
        "WHERE key_hmac = ANY(%s::bytea[]) AND created_at > now() - make_interval(secs => %s) "
        "ORDER BY created_at DESC LIMIT 1",
        (bytea_array(key_hmacs), retention_seconds),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return StoredResponse(str(row[0]), bytes(row[1]), int(row[2]), dict(row[3]))


async def store_response(
    conn: Conn,
    key_hmac: bytes,
    *,
    index_key_id: str,
    request_hmac: bytes,
    application_id: uuid.UUID,
    status_code: int,
    body: dict[str, Any],
) -> None:
    await conn.execute(
        # An expired row not purged yet is replaced.
        "INSERT INTO idempotency_keys (key_hmac, index_key_id, request_hmac, application_id, "
        "status_code, response) VALUES (%s, %s, %s, %s, %s, %s::jsonb) "
        "ON CONFLICT (key_hmac) DO UPDATE SET index_key_id = excluded.index_key_id, "
        "request_hmac = excluded.request_hmac, application_id = excluded.application_id, "
        "status_code = excluded.status_code, response = excluded.response, created_at = now()",
        (key_hmac, index_key_id, request_hmac, application_id, status_code, json.dumps(body)),
    )


async def purge_idempotency_keys(conn: Conn, retention_seconds: float) -> int:
    """Deletes the keys older than the retention; returns how many went."""
    cur = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => %s)",
        (retention_seconds,),
    )
    return cur.rowcount


# One read for the status: the application (if this client owns it: another client's id reads
# as unknown, a 404), its consent and its decision.
GET_APPLICATION_SQL = (
    "SELECT a.id, a.status, a.pan_masked, a.credit_score, a.decision_reason, "
    "a.max_approved_amount, a.created_at, a.updated_at, "
    "CASE WHEN c.application_id IS NULL THEN NULL ELSE jsonb_build_object("
    "'soft_inquiry', c.soft_inquiry, 'text_version', c.text_version, "
    "'captured_at', c.captured_at, 'channel', c.channel) END, "
    "CASE WHEN d.application_id IS NULL THEN NULL ELSE jsonb_build_object("
    "'reasons', d.reasons, 'policy_version', d.policy_version, 'offer', "
    "CASE WHEN d.offer_amount IS NULL THEN NULL ELSE jsonb_build_object("
    "'amount', d.offer_amount::text, 'term_months', d.offer_term_months, "
    "'annual_rate', d.offer_annual_rate::text, 'processing_fee', d.offer_processing_fee::text, "
    "'apr', d.offer_apr::text, 'emi', d.offer_emi::text, 'currency', d.offer_currency, "
    "'expires_at', d.offer_expires_at) END) END, "
    "a.processing_issue_code, a.processing_issue_message, a.processing_issue_since, "
    "a.personal_data_erased_at "
    "FROM applications a "
    "LEFT JOIN consents c ON c.application_id = a.id "
    "LEFT JOIN decisions d ON d.application_id = a.id "
    "WHERE a.id = %s AND a.client_id = %s"
)


# The read and its audit row are one statement: a read is never answered without its row, and
# a refused one (another client's id, or an unknown one: the client cannot tell which) is a row.
AUDITED_READ_SQL = (
    "WITH found AS MATERIALIZED ("  # noqa: S608 - constants only; every value is a parameter
    + GET_APPLICATION_SQL
    + "), "
    "audited AS (INSERT INTO audit_log (application_id, action, actor, principal, request_id, "
    "purpose, outcome) SELECT %s, 'read', %s, %s, %s, %s, "
    "CASE WHEN EXISTS (SELECT 1 FROM found) THEN 'ok' ELSE 'refused' END) "
    "SELECT * FROM found"
)


async def get_application(
    conn: Conn, application_id: uuid.UUID, client_id: str, read: audit.AuditEntry
) -> ApplicationRow | None:
    """The application if `client_id` owns it, with its consent and decision; audited."""
    cur = await conn.execute(
        AUDITED_READ_SQL,
        (
            application_id,
            client_id,
            application_id,
            read.actor,
            read.principal or read.actor,
            audit.bounded_request_id(read.request_id),
            read.purpose or audit.PURPOSE_STATUS,
        ),
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
        consent=row[8],
        decision=row[9],
        processing_issue=(row[10], row[11], row[12]) if row[10] is not None else None,
        personal_data_erased_at=row[13],
    )


async def erase(conn: Conn, request: erasure.Erasure) -> datetime | None:
    """Crypto-shreds the application if the client owns it: when it was erased, else None."""
    cur = await conn.execute(erasure.ERASE_SQL, request.params())
    row = await cur.fetchone()
    return None if row is None else row[1]


async def record_audit(conn: Conn, entries: list[audit.AuditEntry]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(audit.INSERT_SQL, [e.params() for e in entries])
