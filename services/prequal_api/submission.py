"""Submitting an application: the duplicate rule, idempotency keys, encryption and the outbox.

Everything happens in one transaction. The 24-hour duplicate rule is serialized with a
transaction-scoped advisory lock keyed by the PAN's blind index: two submissions of one PAN
queue on the lock, and the second one's check (a new snapshot in READ COMMITTED) sees the
first one's committed row. Submissions of different PANs never wait for each other, and no
extra table row per PAN is needed. Idempotency keys are serialized the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from prequal import audit, events, outbox, pan
from prequal_api import repository
from prequal_api.errors import ApiError
from prequal_api.schemas import Accepted, ApplicationRequest


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def _duplicate() -> ApiError:
    return ApiError(
        409,
        "DUPLICATE_APPLICATION",
        "an application with this PAN was submitted in the last 24 hours",
        [{"field": "pan_number", "message": "submitted in the last 24 hours"}],
    )


def _accepted(application_id: uuid.UUID, created_at: datetime) -> dict[str, Any]:
    return Accepted(
        application_id=application_id, status="PENDING", created_at=created_at
    ).model_dump(mode="json")


@dataclass(frozen=True)
class SubmissionService:
    pool: AsyncConnectionPool
    keyring: pan.Keyring
    blind_index_key: bytes
    topic: str
    actor: str
    pool_timeout: float

    def request_hmac(self, request: ApplicationRequest) -> bytes:
        # The body holds a PAN, so it is fingerprinted with a secret key, never bare-hashed.
        canonical = request.model_dump_json().encode()
        return hmac.new(self.blind_index_key, b"idempotency:" + canonical, hashlib.sha256).digest()

    async def submit(self, request: ApplicationRequest, idempotency_key: str | None) -> Submitted:
        application_id = uuid.uuid4()
        index = pan.blind_index(request.pan_number, self.blind_index_key)
        ciphertext = self.keyring.encrypt(request.pan_number, application_id)
        new = repository.NewApplication(
            id=application_id,
            pan_ciphertext=ciphertext,
            pan_blind_index=index,
            first_name=request.first_name,
            last_name=request.last_name,
            date_of_birth=request.date_of_birth,
            email=str(request.email),
            phone_number=request.phone_number,
            requested_amount=request.requested_amount,
            monthly_income=request.monthly_income,
            loan_type=request.loan_type,
        )
        consent = repository.NewConsent(
            text_version=request.consent.text_version,
            captured_at=request.consent.captured_at,
            channel=request.consent.channel,
        )
        encrypted = audit.AuditEntry(
            application_id, "encrypt", self.actor, pan.Keyring.key_id_of(ciphertext)
        )
        event = self._event(application_id, ciphertext, request)
        if idempotency_key:
            return await self._submit_once(
                idempotency_key, request, new, encrypted, event, consent=consent
            )

        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            created_at = await repository.submit(
                conn, repository.advisory_key(index), new, encrypted, event, consent=consent
            )
        if created_at is None:
            raise _duplicate()
        return Submitted(202, _accepted(application_id, created_at), replayed=False)

    async def _submit_once(
        self,
        key: str,
        request: ApplicationRequest,
        new: repository.NewApplication,
        encrypted: audit.AuditEntry,
        event: outbox.OutboxRow,
        *,
        consent: repository.NewConsent,
    ) -> Submitted:
        """The Idempotency-Key path: a replay returns the stored response, a new key submits."""
        fingerprint = self.request_hmac(request)
        async with (
            self.pool.connection(timeout=self.pool_timeout) as conn,
            conn.transaction(),
        ):
            await repository.lock(
                conn, repository.advisory_key(hashlib.sha256(key.encode()).digest())
            )
            previous = await repository.stored_response(conn, key)
            if previous is not None:
                if not hmac.compare_digest(previous.request_hmac, fingerprint):
                    raise ApiError(
                        422,
                        "IDEMPOTENCY_KEY_REUSED",
                        "this Idempotency-Key was used with a different request body",
                        [{"field": "Idempotency-Key", "message": "reused with another body"}],
                    )
                return Submitted(previous.status_code, previous.body, replayed=True)
            created_at = await repository.submit(
                conn,
                repository.advisory_key(new.pan_blind_index),
                new,
                encrypted,
                event,
                consent=consent,
            )
            if created_at is None:
                raise _duplicate()
            body = _accepted(new.id, created_at)
            await repository.store_response(
                conn,
                key,
                request_hmac=fingerprint,
                application_id=new.id,
                status_code=202,
                body=body,
            )
        return Submitted(202, body, replayed=False)

    def _event(
        self, application_id: uuid.UUID, ciphertext: bytes, request: ApplicationRequest
    ) -> outbox.OutboxRow:
        payload = events.ApplicationSubmitted(
            application_id=application_id,
            pan_encrypted=pan.to_transport(ciphertext),
            monthly_income=request.monthly_income,
            requested_amount=request.requested_amount,
            loan_type=request.loan_type,
            submitted_at=datetime.now(UTC),
        )
        return outbox.OutboxRow.new(
            self.topic, events.APPLICATION_SUBMITTED, application_id, payload.model_dump_json()
        )
