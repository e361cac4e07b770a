"""Per-client ownership, the stored PAN mask, per-client idempotency keys (issue 13).

- `applications.client_id`: the OAuth2 client that submitted it; every read names it in the
  WHERE clause. Rows from before this migration belong to no client ('') and no client can
  read them.
- `applications.pan_masked`: `XXXXXX234F`, computed once at submission, so a status read
  decrypts nothing. Older rows keep NULL (the API shows `XXXXXXXXXX`).
- `applications.recent_application_elsewhere`: another client submitted this PAN in the last
  24 h. The submission is accepted (a 409 would tell this client about another's applicant)
  and decision-service rejects it with `RECENT_APPLICATION_EXISTS` before its rules.
- `idempotency_keys` is keyed by an HMAC of (client, key): keys are per client, never stored
  in clear, and purged after the retention the API states. The old table's rows (unscoped
  keys) are dropped: a retry that spans the upgrade submits anew or gets a 409 naming the id.
- `submit_application()` takes the client and the mask and returns the existing application's
  id for the same client's duplicate (the `409` body names it).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from importlib import import_module

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_SIGNATURE = (
    "bigint, uuid, bytea, bytea, text, text, date, text, text, numeric, numeric, text, text, "
    "text, uuid, smallint, text, text, jsonb"
)
_NEW_SIGNATURE = (
    "bigint, uuid, text, text, bytea, bytea, text, text, date, text, text, numeric, numeric, "
    "text, text, text, uuid, smallint, text, text, jsonb"
)


def upgrade() -> None:
    op.execute(
        "ALTER TABLE applications "
        "ADD COLUMN client_id text NOT NULL DEFAULT '', "
        "ADD COLUMN pan_masked text, "
        "ADD COLUMN recent_application_elsewhere boolean NOT NULL DEFAULT false"
    )
    op.execute("ALTER TABLE applications ALTER COLUMN client_id DROP DEFAULT")
    op.execute("DROP TABLE idempotency_keys")
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            key_hmac bytea PRIMARY KEY,
            request_hmac bytea NOT NULL,
            application_id uuid NOT NULL,
            status_code smallint NOT NULL,
            response jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at)")
    op.execute(f"DROP FUNCTION submit_application({_OLD_SIGNATURE})")
    # The caller's session runs READ COMMITTED (the API sets it on every connection, whatever
    # the database's or role's default): each statement after the lock takes a new snapshot and
    # sees every submission of the PAN that committed before the lock was granted.
    op.execute(
        """
        CREATE FUNCTION submit_application(
            p_lock_key bigint,
            p_id uuid,
            p_client_id text,
            p_pan_masked text,
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
            p_payload jsonb,
            OUT created_at timestamptz,
            OUT existing_id uuid
        )
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            v_elsewhere boolean := false;
        BEGIN
            PERFORM pg_advisory_xact_lock(p_lock_key);
            SELECT a.id INTO existing_id FROM applications a
            WHERE a.pan_blind_index = p_blind_index
              AND a.created_at > now() - interval '24 hours'
              AND a.client_id = p_client_id
            ORDER BY a.created_at DESC LIMIT 1;
            IF existing_id IS NOT NULL THEN
                RETURN;
            END IF;
            v_elsewhere := EXISTS (
                SELECT 1 FROM applications a
                WHERE a.pan_blind_index = p_blind_index
                  AND a.created_at > now() - interval '24 hours'
            );
            INSERT INTO applications (id, client_id, pan_masked, recent_application_elsewhere,
                pan_ciphertext, pan_blind_index, first_name, last_name, date_of_birth, email,
                phone_number, requested_amount, monthly_income, loan_type)
            VALUES (p_id, p_client_id, p_pan_masked, v_elsewhere, p_pan_ciphertext,
                p_blind_index, p_first_name, p_last_name, p_date_of_birth, p_email,
                p_phone_number, p_requested_amount, p_monthly_income, p_loan_type)
            RETURNING applications.created_at INTO created_at;
            INSERT INTO audit_log (application_id, action, actor, key_id)
            VALUES (p_id, 'encrypt', p_actor, p_key_id);
            INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload)
            VALUES (p_event_id, p_id, p_lane, p_topic, p_event_type, p_payload);
        END $$
        """
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION submit_application({_NEW_SIGNATURE})")
    op.execute("DROP TABLE idempotency_keys")
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
    op.execute(
        "ALTER TABLE applications DROP COLUMN client_id, DROP COLUMN pan_masked, "
        "DROP COLUMN recent_application_elsewhere"
    )
    # 0002's function, as it was.
    import_module("prequal.db.migrations.versions.0002_submit_function").upgrade()
