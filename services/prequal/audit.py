"""The audit trail of PAN handling: one `audit_log` row per encrypt, decrypt and mask.

Rows are written in the same transaction as the work they describe, from async or sync code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

AuditAction = Literal["encrypt", "decrypt", "mask", "erase"]

INSERT_SQL = (
    "INSERT INTO audit_log (application_id, action, actor, key_id, detail) "
    "VALUES (%s, %s, %s, %s, %s)"
)


@dataclass(frozen=True)
class AuditEntry:
    application_id: uuid.UUID | None
    action: AuditAction
    actor: str
    key_id: str | None = None
    detail: str | None = None

    def params(self) -> tuple[object, ...]:
        return (self.application_id, self.action, self.actor, self.key_id, self.detail)
