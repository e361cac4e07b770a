"""submit_application(): the duplicate rule and the submission's three inserts, in one call.

The API calls it once per POST as a prepared statement: one round trip with server-side
binding. Inside, the PAN's advisory lock is taken first; PL/pgSQL gives each following statement
a fresh snapshot, so the 24-hour check sees every submission of the PAN that committed before
the lock was granted. It returns the new row's created_at, or NULL for a duplicate.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION submit_application(
            p_lock_key bigint,
            p_id uuid,
            p_pan_ciphertext bytea,
            p_blind_index bytea,
            p_first_name text,
            p_last_name text,
            p_date_of_birth date,
            p_email text,
            p_phone_number text,
            p_requested_amount numeric,
            p_monthly_income numeric,
            p_loan_type text,
            p_actor text,
            p_key_id text,
            p_event_id uuid,
            p_lane smallint,
            p_topic text,
            p_event_type text,
            p_payload jsonb
        ) RETURNS timestamptz
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_created_at timestamptz;
        BEGIN
            PERFORM pg_advisory_xact_lock(p_lock_key);
            IF EXISTS (
                SELECT 1 FROM applications
                WHERE pan_blind_index = p_blind_index
                  AND created_at > now() - interval '24 hours'
            ) THEN
                RETURN NULL;
            END IF;
            INSERT INTO applications (id, pan_ciphertext, pan_blind_index, first_name, last_name,
                date_of_birth, email, phone_number, requested_amount, monthly_income, loan_type)
            VALUES (p_id, p_pan_ciphertext, p_blind_index, p_first_name, p_last_name,
                p_date_of_birth, p_email, p_phone_number, p_requested_amount, p_monthly_income,
                p_loan_type)
            RETURNING created_at INTO v_created_at;
            INSERT INTO audit_log (application_id, action, actor, key_id)
            VALUES (p_id, 'encrypt', p_actor, p_key_id);
            INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload)
            VALUES (p_event_id, p_id, p_lane, p_topic, p_event_type, p_payload);
            RETURN v_created_at;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION submit_application(bigint, uuid, bytea, bytea, text, text, date, text, "
        "text, numeric, numeric, text, text, text, uuid, smallint, text, text, jsonb)"
    )
