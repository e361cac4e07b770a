"""Seal, don't share: sealed per-application data keys and encrypted personal fields (issue 14).

- `application_data_keys`: one row per application, its data key sealed with HPKE to the credit
  service's public key (`prequal.sealing`), and the sealing key id. Deleting the row erases the
  applicant everywhere the ciphertexts were copied (crypto-shredding: Kafka, DLQ, backups).
- `applications.personal_ciphertext`: names, date of birth, e-mail and phone as one AES-256-GCM
  ciphertext under the data key. New rows store `pan_ciphertext` under the data key too (format
  byte 0x02); rows from before keep the keyring format (0x01), which the credit service still
  opens with its decrypt-only legacy keyring.
- `applications.personal_data_erased_at`: when the personal data was erased (DELETE
  /applications/{id}, `prequalctl erase`); the decision and the audit trail stay.
- The plaintext columns `first_name`, `last_name`, `date_of_birth`, `email`, `phone_number`
  become nullable and are no longer written. Existing rows keep their plaintext until they are
  erased (`prequalctl erase ID` or `prequalctl erase --older-than`, which NULL those columns):
  the migration has no public key to seal them with, and inventing a data key here would leave
  it in the migration's memory. `pan_ciphertext`, `pan_blind_index` become nullable so erasure
  can clear them.
- `audit_log` learns the action `erase`.
- `submit_application()` takes the personal ciphertext and the sealed data key instead of the
  five plaintext fields, and writes the data-key row in the same call.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PREVIOUS_SIGNATURE = (
    "bigint, uuid, text, text, bytea, bytea, text, text, date, text, text, numeric, numeric, "
    "text, text, text, uuid, smallint, text, text, jsonb"
)
_SIGNATURE = (
    "bigint, uuid, text, text, bytea, bytea, bytea, bytea, numeric, numeric, text, text, text, "
    "uuid, smallint, text, text, jsonb"
)
_PERSONAL = ("first_name", "last_name", "date_of_birth", "email", "phone_number")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE application_data_keys (
            application_id uuid PRIMARY KEY REFERENCES applications (id),
            key_id text NOT NULL,
            sealed_key bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX ix_application_data_keys_key_id ON application_data_keys (key_id)")
    nullable = ", ".join(
        f"ALTER COLUMN {c} DROP NOT NULL" for c in (*_PERSONAL, "pan_ciphertext", "pan_blind_index")
    )
    op.execute(
        "ALTER TABLE applications ADD COLUMN personal_ciphertext bytea, "
        f"ADD COLUMN personal_data_erased_at timestamptz, {nullable}"
    )
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask', 'consent', 'erase'))"
    )
    op.execute(f"DROP FUNCTION submit_application({_PREVIOUS_SIGNATURE})")
    # As 0005's, with the personal fields sealed: READ COMMITTED callers, lock first.
    op.execute(
        """
        CREATE FUNCTION submit_application(
            p_lock_key bigint,
            p_id uuid,
            p_client_id text,
            p_pan_masked text,
            p_pan_ciphertext bytea,
            p_blind_index bytea,
            p_personal_ciphertext bytea,
            p_sealed_key bytea,
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
                pan_ciphertext, pan_blind_index, personal_ciphertext, requested_amount,
                monthly_income, loan_type)
            VALUES (p_id, p_client_id, p_pan_masked, v_elsewhere, p_pan_ciphertext,
                p_blind_index, p_personal_ciphertext, p_requested_amount, p_monthly_income,
                p_loan_type)
            RETURNING applications.created_at INTO created_at;
            INSERT INTO application_data_keys (application_id, key_id, sealed_key)
            VALUES (p_id, p_key_id, p_sealed_key);
            INSERT INTO audit_log (application_id, action, actor, key_id)
            VALUES (p_id, 'encrypt', p_actor, p_key_id);
            INSERT INTO outbox_events (id, aggregate_id, lane, topic, event_type, payload)
            VALUES (p_event_id, p_id, p_lane, p_topic, p_event_type, p_payload);
        END $$
        """
    )


def downgrade() -> None:
    """Back to plaintext columns is impossible for sealed rows: they stay NULL there."""
    op.execute(f"DROP FUNCTION submit_application({_SIGNATURE})")
    op.execute("DROP TABLE application_data_keys")
    op.execute("DELETE FROM audit_log WHERE action = 'erase'")
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask', 'consent'))"
    )
    op.execute(
        "ALTER TABLE applications DROP COLUMN personal_ciphertext, "
        "DROP COLUMN personal_data_erased_at"
    )
    # 0005's function, as it was (the columns stay nullable: sealed rows have no plaintext).
    op.execute(_PREVIOUS_FUNCTION)


_PREVIOUS_FUNCTION = """
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
