"""The audit action `reseal`: moving sealed data keys to a newer sealing key pair.

`prequalctl keys reseal` opens each data key still sealed to an old key pair with the credit
service's private keys and seals it again to the active public key (docs/data-protection.md).
Each batch writes one audit row in its own transaction: action `reseal`, principal and purpose,
the new key id, and how many data keys left which old key (`detail`). No personal data is
decrypted (only the data keys are opened), so it is not a `decrypt` row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BEFORE = "'encrypt', 'decrypt', 'mask', 'consent', 'erase', 'read'"


def upgrade() -> None:
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        f"CHECK (action IN ({_BEFORE}, 'reseal'))"
    )


def downgrade() -> None:
    # audit_log is append-only (its trigger refuses DELETE), so reseal rows cannot be dropped
    # here: a downgrade past them keeps the wider constraint's rows by refusing instead.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM audit_log WHERE action = 'reseal') THEN
                RAISE EXCEPTION 'audit_log holds reseal rows; they are never removed';
            END IF;
        END $$
        """
    )
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        f"ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action CHECK (action IN ({_BEFORE}))"
    )
