"""The audit trail of personal-data handling: one `audit_log` row per encrypt, decrypt, read.

Every row names who (`principal`: the OAuth2 client id for the API, the service for a
consumer), on whose behalf a service acted (`actor`), for which request or event, why
(`purpose`) and how it ended (`outcome`: a failed decryption and a refused read are rows too).
Rows are written in the same transaction as the work they describe, and the table is
append-only (migration 0008): docs/audit.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

AuditAction = Literal["encrypt", "decrypt", "mask", "consent", "read", "erase", "reseal"]
AuditOutcome = Literal["ok", "failed", "refused"]

INSERT_SQL = (
    "INSERT INTO audit_log (application_id, action, actor, key_id, detail, principal, "
    "request_id, event_id, purpose, outcome) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

# Many rows in one statement: one array per column, unnested row by row (many_params).
INSERT_MANY_SQL = (
    "INSERT INTO audit_log (application_id, action, actor, key_id, detail, principal, "
    "request_id, event_id, purpose, outcome) SELECT * FROM unnest(%s::uuid[], %s::text[], "
    "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::uuid[], %s::text[], "
    "%s::text[])"
)

# A client may send any X-Request-ID; the audit keeps a bounded prefix of it.
REQUEST_ID_MAX = 128


@dataclass(frozen=True)
class AuditEntry:
    """One audit row. Without a principal the actor itself is the principal (a service acting
    on its own account, as a consumer does); without a purpose the detail, then the action."""

    application_id: uuid.UUID | None
    action: AuditAction
    actor: str
    key_id: str | None = None
    detail: str | None = None
    principal: str | None = None
    request_id: str | None = None
    event_id: uuid.UUID | None = None
    purpose: str | None = None
    outcome: AuditOutcome = "ok"

    def params(self) -> tuple[object, ...]:
        return (
            self.application_id,
            self.action,
            self.actor,
            self.key_id,
            self.detail,
            self.principal or self.actor,
            bounded_request_id(self.request_id),
            self.event_id,
            self.purpose or self.detail or self.action,
            self.outcome,
        )


def many_params(entries: list[AuditEntry]) -> tuple[list[object], ...]:
    """INSERT_MANY_SQL's parameters: the entries' params() transposed into one list per column."""
    rows = [entry.params() for entry in entries]
    return tuple(list(column) for column in zip(*rows, strict=True)) if rows else ([],) * 10


def bounded_request_id(request_id: str | None) -> str | None:
    return request_id[:REQUEST_ID_MAX] if request_id else None


# Purposes, one per reason the platform touches personal data (docs/audit.md).
PURPOSE_SUBMISSION = "application-submission"
PURPOSE_CONSENT = "consent-capture"
PURPOSE_STATUS = "status-read"
PURPOSE_CREDIT_SCORING = "credit-scoring"
# `prequalctl reindex` opens a PAN to recompute its blind index under a new index key.
PURPOSE_REINDEX = "reindex"
# `prequalctl keys reseal` opens data keys (no personal field) to seal them to a newer key pair.
PURPOSE_KEY_ROTATION = "key-rotation"
