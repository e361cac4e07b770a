"""What credit-service reads and writes per batch: two statements, whatever the batch's size.

Record by record, a report costs three statements (its sealed data key, its audit row, its
outbox row). On the consumer runtime's fast path the handler reads every sealed data key of
the batch with one SELECT and writes every audit row and every report's outbox row with one
INSERT: the rows travel as JSON arrays (one `json.dumps`, one parameter each) that PostgreSQL
types with jsonb_to_recordset, in the order of the batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from prequal import audit, outbox

DATA_KEY_SQL = (
    "SELECT k.sealed_key, a.personal_data_erased_at FROM applications a "
    "LEFT JOIN application_data_keys k ON k.application_id = a.id WHERE a.id = %s"
)
DATA_KEYS_SQL = (
    "SELECT a.id, k.sealed_key, a.personal_data_erased_at FROM applications a "
    "LEFT JOIN application_data_keys k ON k.application_id = a.id WHERE a.id = ANY(%s)"
)
# Both inserts in one statement: a data-modifying CTE runs whether or not the query reads it.
INSERT_REPORTS_SQL = (
    "WITH audited AS (INSERT INTO audit_log (application_id, action, actor, key_id, detail, "  # noqa: S608 - constants only; every value is a parameter
    "principal, request_id, event_id, purpose, outcome) "
    "SELECT application_id, action, actor, key_id, detail, principal, request_id, event_id, "
    "purpose, outcome FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (application_id uuid, "
    "action text, actor text, key_id text, detail text, principal text, request_id text, "
    "event_id uuid, purpose text, outcome text)) WITH ORDINALITY AS r(application_id, action, "
    "actor, key_id, detail, principal, request_id, event_id, purpose, outcome, n) ORDER BY n) "
    + outbox.INSERT_ROWS_SQL
)

DataKeyRow = tuple[bytes | None, datetime | None]
"""An application's sealed data key (None once erased) and when its data was erased."""

_AUDIT_COLUMNS = (
    "application_id",
    "action",
    "actor",
    "key_id",
    "detail",
    "principal",
    "request_id",
    "event_id",
    "purpose",
    "outcome",
)


def data_key_row(conn: psycopg.Connection[Any], application_id: uuid.UUID) -> DataKeyRow | None:
    """One application's row; None when the application does not exist."""
    row = conn.execute(DATA_KEY_SQL, (application_id,)).fetchone()
    return None if row is None else (row[0], row[1])


def data_key_rows(
    conn: psycopg.Connection[Any], application_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DataKeyRow]:
    """Every existing application's row among `application_ids`, by id."""
    return {
        row[0]: (row[1], row[2])
        for row in conn.execute(DATA_KEYS_SQL, (list(set(application_ids)),))
    }


def insert_report(
    conn: psycopg.Connection[Any], audited: audit.AuditEntry, row: outbox.OutboxRow
) -> None:
    conn.execute(audit.INSERT_SQL, audited.params())
    conn.execute(outbox.INSERT_SQL, row.params())


def insert_reports(
    conn: psycopg.Connection[Any], reports: Sequence[tuple[audit.AuditEntry, outbox.OutboxRow]]
) -> None:
    """The same rows as `insert_report` on each, in order, with one statement."""
    if not reports:
        return
    audits = [dict(zip(_AUDIT_COLUMNS, a.params(), strict=True)) for a, _ in reports]
    conn.execute(
        INSERT_REPORTS_SQL,
        (json.dumps(audits, default=str), outbox.rows_param([row for _, row in reports])),
    )
