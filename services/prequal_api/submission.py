"""Submitting an application: the duplicate rule, idempotency keys, sealing and the outbox.

The PAN and the personal fields are encrypted under a fresh per-application data key, which is
sealed to the credit service's public key and forgotten (prequal.sealing): the API cannot read
back what it stored. The event carries the PAN ciphertext but not the sealed key, so erasing the
key row in the database makes every Kafka and DLQ copy unreadable.

Everything happens in one transaction. The 24-hour duplicate rule is serialized with
transaction-scoped advisory locks keyed by the PAN's blind index under every live index key
(prequal.blind_index): two submissions of one PAN queue on a lock they share, and the second
one's check (a new snapshot in READ COMMITTED, which the API sets on every connection whatever
the database's default) sees the first one's committed row under whichever key it was made.
Submissions of different PANs never wait for each other. Idempotency keys are serialized the
same way, and their locks are always taken before the PAN's.

The rule is per client: the same client's duplicate gets a 409 naming its earlier
application; another client's duplicate is accepted and flagged, and decision-service rejects
it (`RECENT_APPLICATION_EXISTS`), so no answer tells one client about another's applicant.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from prequal import audit, blind_index, events, outbox, pan
from prequal_api import repository
from prequal_api.errors import ApiError
from prequal_api.key_refresh import KeyHolder
from prequal_api.schemas import Accepted, ApplicationRequest


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    replayed: bool


class DuplicateApplicationError(ApiError):
    """This client submitted the PAN in the last 24 h; the body names that application."""

    def __init__(self, existing_id: uuid.UUID) -> None:
        super().__init__(
            409,
            "DUPLICATE_APPLICATION",
            "you submitted an application with this PAN in the last 24 hours: "
            "follow it with GET /applications/{application_id}/status",
            [{"field": "pan_number", "message": "submitted in the last 24 hours"}],
            extra={"application_id": str(existing_id)},
        )


def personal_fields(request: ApplicationRequest) -> bytes:
    """The personal fields as one compact JSON document, encrypted as a whole."""
    return request.model_dump_json(
        include={"first_name", "last_name", "date_of_birth", "email", "phone_number"}
    ).encode()


def _accepted(application_id: uuid.UUID, created_at: datetime) -> dict[str, Any]:
    return Accepted(
        application_id=application_id, status="PENDING", created_at=created_at
    ).model_dump(mode="json")


@dataclass(frozen=True)
class SubmissionService:
    pool: AsyncConnectionPool
    # The keys in use (prequal_api.key_refresh): each submission takes one set at its start.
    keys: KeyHolder
    topic: str
    actor: str
    pool_timeout: float
    idempotency_retention_seconds: float = 24 * 3600

    async def submit(
        self,
        request: ApplicationRequest,
        idempotency_key: str | None,
        client_id: str,
        request_id: str | None = None,
    ) -> Submitted:
        application_id = uuid.uuid4()
        keys = self.keys.current
        indexes = keys.index_keys.pan_candidates(request.pan_number)
        sealed = keys.sealer.seal(application_id, request.pan_number, personal_fields(request))
        new = repository.NewApplication(
            id=application_id,
            client_id=client_id,
            pan_masked=pan.mask_pan(request.pan_number),
            pan_ciphertext=sealed.pan,
            pan_indexes=indexes,
            personal_ciphertext=sealed.personal,
            sealed_key=sealed.sealed_key,
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
            application_id,
            "encrypt",
            self.actor,
            sealed.key_id,
            principal=client_id,
            request_id=request_id,
            purpose=audit.PURPOSE_SUBMISSION,
        )
        event = self._event(application_id, sealed.pan, request)
        if idempotency_key:
            key_hmacs = keys.index_keys.idempotency_candidates(client_id, idempotency_key)
            return await self._submit_once(
                key_hmacs, request, new, encrypted, event, ring=keys.index_keys, consent=consent
            )

        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            outcome = await repository.submit(
                conn,
                blind_index.lock_keys(indexes.values()),
                new,
                encrypted,
                event,
                consent=consent,
            )
        if outcome.created_at is None:
            assert outcome.existing_id is not None
            raise DuplicateApplicationError(outcome.existing_id)
        return Submitted(202, _accepted(application_id, outcome.created_at), replayed=False)

    async def _submit_once(
        self,
        key_hmacs: dict[str, bytes],
        request: ApplicationRequest,
        new: repository.NewApplication,
        encrypted: audit.AuditEntry,
        event: outbox.OutboxRow,
        *,
        ring: blind_index.IndexKeyRing,
        consent: repository.NewConsent,
    ) -> Submitted:
        """The Idempotency-Key path: a replay returns the stored response, a new key submits.

        The key is looked up under every live index key (a retry may reach a pod with another
        active key than the first try's), and the body compared under the key the stored row
        was made with."""
        canonical = request.model_dump_json().encode()
        async with (
            self.pool.connection(timeout=self.pool_timeout) as conn,
            conn.transaction(),
        ):
            await repository.lock(conn, blind_index.lock_keys(key_hmacs.values()))
            previous = await repository.stored_response(
                conn, list(key_hmacs.values()), self.idempotency_retention_seconds
            )
            if previous is not None:
                fingerprint = ring.request_fingerprint(canonical, previous.index_key_id)
                if not hmac.compare_digest(previous.request_hmac, fingerprint):
                    raise ApiError(
                        422,
                        "IDEMPOTENCY_KEY_REUSED",
                        "this Idempotency-Key was used with a different request body",
                        [{"field": "Idempotency-Key", "message": "reused with another body"}],
                    )
                return Submitted(previous.status_code, previous.body, replayed=True)
            outcome = await repository.submit(
                conn,
                blind_index.lock_keys(new.pan_indexes.values()),
                new,
                encrypted,
                event,
                consent=consent,
            )
            if outcome.created_at is None:
                assert outcome.existing_id is not None
                raise DuplicateApplicationError(outcome.existing_id)
            body = _accepted(new.id, outcome.created_at)
            active = ring.active_key_id
            await repository.store_response(
                conn,
                key_hmacs[active],
                index_key_id=active,
                request_hmac=ring.request_fingerprint(canonical, active),
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
