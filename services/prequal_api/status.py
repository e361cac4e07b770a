"""Answering an application's status to the client that owns it.

The PAN mask was computed and stored at submission, so a status read decrypts nothing: the API
needs no decryption key for it. Every read is audited, with the client and the request id,
in the same statement (refused reads too). The owner check is part of the query (`WHERE id = … AND
client_id = …`): another client's application is indistinguishable from an unknown id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from prequal import audit, erasure
from prequal_api import repository
from prequal_api.errors import ApiError
from prequal_api.schemas import (
    ApplicationStatus,
    Consent,
    Decision,
    PersonalDataErasure,
    ProcessingIssue,
)

# Rows from before the mask was stored (migration 0005) show nothing of the PAN.
_NO_MASK = "X" * 10


@dataclass(frozen=True)
class StatusService:
    pool: AsyncConnectionPool
    pool_timeout: float
    actor: str = "prequal-api"

    async def status(
        self, application_id: uuid.UUID, client_id: str, request_id: str | None = None
    ) -> ApplicationStatus:
        read = audit.AuditEntry(
            application_id,
            "read",
            self.actor,
            principal=client_id,
            request_id=request_id,
            purpose=audit.PURPOSE_STATUS,
        )
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            row = await repository.get_application(conn, application_id, client_id, read)
        if row is None:
            raise ApiError(404, "NOT_FOUND", "no such application for this client")
        return ApplicationStatus(
            application_id=row.id,
            status=row.status,
            pan_masked=row.pan_masked or _NO_MASK,
            credit_score=row.credit_score,
            decision=None if row.decision is None else Decision.model_validate(row.decision),
            consent=None if row.consent is None else Consent.model_validate(row.consent),
            decision_reason=row.decision_reason,
            max_approved_amount=row.max_approved_amount,
            processing_issue=_issue(row.processing_issue),
            personal_data_erasure=(
                None
                if row.personal_data_erased_at is None
                else PersonalDataErasure(
                    erased_at=row.personal_data_erased_at, message=erasure.ERASED_NOTICE
                )
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class ErasureService:
    """`DELETE /applications/{id}`: crypto-shredding, for the client that owns the application."""

    pool: AsyncConnectionPool
    pool_timeout: float
    actor: str

    async def erase(self, application_id: uuid.UUID, client_id: str) -> None:
        request = erasure.Erasure(
            application_id, client_id, self.actor, f"erasure requested by client {client_id}"
        )
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            erased_at = await repository.erase(conn, request)
        if erased_at is None:
            raise ApiError(404, "NOT_FOUND", "no such application for this client")


def _issue(issue: tuple[str, str, datetime] | None) -> ProcessingIssue | None:
    if issue is None:
        return None
    code, message, since = issue
    return ProcessingIssue(code=code, message=message, since=since)
