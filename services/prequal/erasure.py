"""Erasure by crypto-shredding: delete the sealed data key and the personal columns.

The sealed data key is the only way to the PAN and personal-field ciphertexts, so once its row
is gone every copy of them (the outbox payload, Kafka, a DLQ, a backup taken later) is noise.
The application keeps its status, credit score, decision, consent and audit trail: what a
lender must keep to explain a decision holds no personal field. Each erasure writes an
`erase` audit row in the same statement. Used by the API (`DELETE /applications/{id}`) and by
`prequalctl erase` (one id, or every application older than a retention period).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

ERASED_NOTICE = "the applicant's personal data was erased by crypto-shredding"

# One statement: clear the personal columns, delete the data key, audit. `client_id` NULL
# means any client (the operator's CLI); the API always names the caller's client.
ERASE_SQL = """
WITH erased AS (
    UPDATE applications SET
        pan_ciphertext = NULL, pan_blind_index = NULL, pan_index_key_id = NULL, pan_masked = NULL,
        personal_ciphertext = NULL, first_name = NULL, last_name = NULL,
        date_of_birth = NULL, email = NULL, phone_number = NULL,
        personal_data_erased_at = coalesce(personal_data_erased_at, now()),
        updated_at = now(), version = version + 1
    WHERE id = %(id)s AND (%(client_id)s::text IS NULL OR client_id = %(client_id)s::text)
    RETURNING id, personal_data_erased_at
), shredded AS (
    DELETE FROM application_data_keys WHERE application_id IN (SELECT id FROM erased)
    RETURNING key_id
), audited AS (
    INSERT INTO audit_log (application_id, action, actor, key_id, detail, principal, purpose)
    SELECT id, 'erase', %(actor)s, (SELECT key_id FROM shredded), %(reason)s,
        coalesce(%(client_id)s::text, %(actor)s), 'erasure' FROM erased
)
SELECT id, personal_data_erased_at FROM erased
"""

# Oldest first, not yet erased; the CLI erases them one statement (and transaction) each.
DUE_SQL = """
SELECT id, created_at FROM applications
WHERE personal_data_erased_at IS NULL AND created_at < now() - make_interval(secs => %s)
ORDER BY created_at
LIMIT %s
"""


@dataclass(frozen=True)
class Erasure:
    application_id: uuid.UUID
    client_id: str | None  # None: any client (an operator's command)
    actor: str
    reason: str

    def params(self) -> dict[str, object]:
        return {
            "id": self.application_id,
            "client_id": self.client_id,
            "actor": self.actor,
            "reason": self.reason,
        }
