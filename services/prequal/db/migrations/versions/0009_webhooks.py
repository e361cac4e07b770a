"""Webhook endpoints and their deliveries.

- `webhook_endpoints`: the URLs an OAuth2 client registered (`webhooks:manage`), each with its
  Standard Webhooks signing secret (`whsec_` + base64). The secret is stored as issued, not
  encrypted: the dispatcher needs it to sign, and the API shows it once, at creation, never
  again (list and delete do not select it). Deleting an endpoint deletes its deliveries.
- `webhook_deliveries`: one row per (endpoint, decided event), the dispatcher's parking table:
  `PENDING` with `next_attempt_at` (the backoff, or the lease of an attempt in flight),
  `attempts` and `last_error`, then `DELIVERED` or `DEAD` (after the stated number of
  attempts; `prequalctl webhooks replay` makes it `PENDING` again).

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_endpoints (
            id uuid PRIMARY KEY,
            client_id text NOT NULL,
            url text NOT NULL,
            secret text NOT NULL,
            enabled boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_webhook_endpoints_secret CHECK (starts_with(secret, 'whsec_'))
        )
        """
    )
    op.execute("CREATE INDEX ix_webhook_endpoints_client_id ON webhook_endpoints (client_id)")
    op.execute(
        """
        CREATE TABLE webhook_deliveries (
            id uuid PRIMARY KEY,
            endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id uuid NOT NULL,
            application_id uuid NOT NULL,
            payload jsonb NOT NULL,
            status text NOT NULL DEFAULT 'PENDING',
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            delivered_at timestamptz,
            CONSTRAINT uq_webhook_deliveries_endpoint_event UNIQUE (endpoint_id, event_id),
            CONSTRAINT ck_webhook_deliveries_status
                CHECK (status IN ('PENDING', 'DELIVERED', 'DEAD'))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_webhook_deliveries_due ON webhook_deliveries "
        "(endpoint_id, next_attempt_at) WHERE status = 'PENDING'"
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries")
    op.execute("DROP TABLE webhook_endpoints")
