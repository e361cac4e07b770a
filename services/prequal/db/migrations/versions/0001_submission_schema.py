"""Submission schema: applications, outbox, inbox, audit log and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE applications (
            id uuid PRIMARY KEY,
            status text NOT NULL DEFAULT 'PENDING',
            pan_ciphertext bytea NOT NULL,
            pan_blind_index bytea NOT NULL,
            first_name text NOT NULL,
            last_name text NOT NULL,
            date_of_birth date NOT NULL,
            email text NOT NULL,
            phone_number text NOT NULL,
            requested_amount numeric(14, 2) NOT NULL,
            monthly_income numeric(14, 2) NOT NULL,
            loan_type text NOT NULL,
            credit_score integer,
            decision_reason text,
            max_approved_amount numeric(16, 2),
            version integer NOT NULL DEFAULT 1,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_applications_status
                CHECK (status IN ('PENDING', 'PRE_APPROVED', 'REJECTED', 'MANUAL_REVIEW')),
            CONSTRAINT ck_applications_loan_type CHECK (loan_type IN ('PERSONAL', 'HOME', 'AUTO'))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_applications_pan_recent ON applications (pan_blind_index, created_at)"
    )
    op.execute(
        """
        CREATE TABLE outbox_events (
            id uuid PRIMARY KEY,
            seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
            aggregate_id uuid NOT NULL,
            lane smallint NOT NULL,
            topic text NOT NULL,
            event_type text NOT NULL,
            payload jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz,
            CONSTRAINT ck_outbox_events_lane CHECK (lane >= 0 AND lane < 64)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_outbox_events_unpublished ON outbox_events (seq) "
        "WHERE published_at IS NULL"
    )
    op.execute(
        "CREATE INDEX ix_outbox_events_published ON outbox_events (published_at) "
        "WHERE published_at IS NOT NULL"
    )
    # The publisher sleeps on this channel; the inserting transaction wakes it on commit.
    op.execute(
        """
        CREATE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('outbox_events', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify()"
    )
    op.execute(
        """
        CREATE TABLE processed_messages (
            consumer_group text NOT NULL,
            event_id uuid NOT NULL,
            processed_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_processed_messages PRIMARY KEY (consumer_group, event_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            application_id uuid,
            action text NOT NULL,
            actor text NOT NULL,
            key_id text,
            detail text,
            CONSTRAINT ck_audit_log_action CHECK (action IN ('encrypt', 'decrypt', 'mask'))
        )
        """
    )
    op.execute("CREATE INDEX ix_audit_log_application ON audit_log (application_id)")
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key text PRIMARY KEY,
            request_hmac bytea NOT NULL,
            application_id uuid NOT NULL,
            status_code smallint NOT NULL,
            response jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE audit_log")
    op.execute("DROP TABLE processed_messages")
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute("DROP FUNCTION outbox_events_notify()")
    op.execute("DROP TABLE outbox_events")
    op.execute("DROP TABLE applications")
