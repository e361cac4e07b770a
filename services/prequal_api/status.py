"""Answering an application's status, with its PAN masked (and the reads audited)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from prequal import audit, pan
from prequal_api import repository
from prequal_api.errors import ApiError
from prequal_api.schemas import ApplicationStatus, Consent, Decision, ProcessingIssue


@dataclass(frozen=True)
class StatusService:
    pool: AsyncConnectionPool
    keyring: pan.Keyring
    actor: str
    pool_timeout: float

    async def status(self, application_id: uuid.UUID) -> ApplicationStatus:
        async with (
            self.pool.connection(timeout=self.pool_timeout) as conn,
            conn.transaction(),
        ):
            row = await repository.get_application(conn, application_id)
            if row is None:
                raise ApiError(404, "NOT_FOUND", f"no application {application_id}")
            # Masking needs the last characters, so the PAN is decrypted here; both the
            # decryption and the masking leave an audit row in this transaction.
            key_id = pan.Keyring.key_id_of(row.pan_ciphertext)
            masked = pan.mask_pan(self.keyring.decrypt(row.pan_ciphertext, application_id))
            await repository.record_audit(
                conn,
                [
                    audit.AuditEntry(application_id, "decrypt", self.actor, key_id, "status read"),
                    audit.AuditEntry(application_id, "mask", self.actor, key_id, "status read"),
                ],
            )
        return ApplicationStatus(
            application_id=row.id,
            status=row.status,
            pan_masked=masked,
            credit_score=row.credit_score,
            decision=None if row.decision is None else Decision.model_validate(row.decision),
            consent=None if row.consent is None else Consent.model_validate(row.consent),
            decision_reason=row.decision_reason,
            max_approved_amount=row.max_approved_amount,
            processing_issue=_issue(row.processing_issue),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _issue(issue: tuple[str, str, datetime] | None) -> ProcessingIssue | None:
    if issue is None:
        return None
    code, message, since = issue
    return ProcessingIssue(code=code, message=message, since=since)
