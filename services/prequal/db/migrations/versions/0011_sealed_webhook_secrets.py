"""Webhook signing secrets sealed at rest (prequal.webhook_secrets).

`webhook_endpoints.sealed_secret` holds the secret sealed with HPKE to the webhook dispatcher's
public key, bound to the endpoint id; a database dump no longer lets anyone forge our webhooks.
The plaintext column `secret` stays only for rows written before this revision and becomes
nullable: every row has exactly one of the two. The migration itself seals nothing (it holds no
key): `prequalctl webhooks reseal` seals the remaining plaintext secrets with
`WEBHOOK_SEALING_PUBLIC_KEYS` and empties the column. Until then the dispatcher still signs
those rows with the plaintext secret, so an upgrade never interrupts a delivery.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE webhook_endpoints ADD COLUMN sealed_secret bytea")
    op.execute("ALTER TABLE webhook_endpoints ALTER COLUMN secret DROP NOT NULL")
    op.execute(
        "ALTER TABLE webhook_endpoints ADD CONSTRAINT ck_webhook_endpoints_one_secret "
        "CHECK (num_nonnulls(secret, sealed_secret) = 1)"
    )


def downgrade() -> None:
    # A sealed secret cannot be unsealed here (no private key): refuse rather than lose it.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM webhook_endpoints WHERE sealed_secret IS NOT NULL) THEN
                RAISE EXCEPTION 'webhook endpoints have sealed secrets; delete them first';
            END IF;
        END $$
        """
    )
    op.execute("ALTER TABLE webhook_endpoints DROP CONSTRAINT ck_webhook_endpoints_one_secret")
    op.execute("ALTER TABLE webhook_endpoints ALTER COLUMN secret SET NOT NULL")
    op.execute("ALTER TABLE webhook_endpoints DROP COLUMN sealed_secret")
