"""A blind index that can rotate: every stored digest names its index key (issue 14, item 3).

- `applications.pan_index_key_id` and `idempotency_keys.index_key_id`: the id of the index
  root key (prequal.blind_index) the digest was made with. Existing rows were made with the
  single `PAN_BLIND_INDEX_KEY`, which the ring calls `v0`: they get `v0`. An erased application
  (no index any more) gets none.
- `ix_applications_pan_index_key_id`: `prequalctl reindex` and the retirement check find the
  rows still under an old key without a scan.
- `submit_application()` takes every live key's digest of the PAN (`p_candidates`) and their
  advisory-lock keys (`p_lock_keys`, ascending): it locks them all, in that order, then checks
  the 24-hour rule with `pan_blind_index = ANY(p_candidates)` (the index on
  `(pan_blind_index, created_at)` serves it, one probe per key), and stores the active key's
  digest with its key id.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The single key from before this migration is `v0` in the ring (prequal.blind_index).
_PREVIOUS_SIGNATURE = (
    "bigint, uuid, text, text, bytea, bytea, bytea, bytea, numeric, numeric, text, text, text, "
    "uuid, smallint, text, text, jsonb"
)
_SIGNATURE = (
    "bigint[], uuid, text, text, bytea, bytea[], bytea, text, bytea, bytea, numeric, numeric, "
    "text, text, text, uuid, smallint, text, text, jsonb"
)


def upgrade() -> None:
    op.execute("ALTER TABLE applications ADD COLUMN pan_index_key_id text")
    op.execute("UPDATE applications SET pan_index_key_id = 'v0' WHERE pan_blind_index IS NOT NULL")
    op.execute(
        "CREATE INDEX ix_applications_pan_index_key_id ON applications (pan_index_key_id) "
        "WHERE pan_index_key_id IS NOT NULL"
    )
    op.execute("ALTER TABLE idempotency_keys ADD COLUMN index_key_id text")
    op.execute("UPDATE idempotency_keys SET index_key_id = 'v0'")
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN index_key_id SET NOT NULL")
    op.execute(f"DROP FUNCTION submit_application({_PREVIOUS_SIGNATURE})")
    op.execute(
        """
        CREATE FUNCTION submit_application(
            p_lock_keys bigint[],
            p_id uuid,
            p_client_id text,
            p_pan_masked text,
            p_pan_ciphertext bytea,
            p_candidates bytea[],
            p_blind_index bytea,
            p_index_key_id text,
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
            v_lock bigint;
        BEGIN
            -- Ascending and once each, whatever the caller sent: no two submissions can each
            -- hold a lock the other waits for.
            FOREACH v_lock IN ARRAY (
                SELECT array_agg(DISTINCT k ORDER BY k) FROM unnest(p_lock_keys) AS k
            ) LOOP
                PERFORM pg_advisory_xact_lock(v_lock);
            END LOOP;
            SELECT a.id INTO existing_id FROM applications a
            WHERE a.pan_blind_index = ANY (p_candidates)
              AND a.created_at > now() - interval '24 hours'
              AND a.client_id = p_client_id
            ORDER BY a.created_at DESC LIMIT 1;
            IF existing_id IS NOT NULL THEN
                RETURN;
            END IF;
            v_elsewhere := EXISTS (
                SELECT 1 FROM applications a
                WHERE a.pan_blind_index = ANY (p_candidates)
                  AND a.created_at > now() - interval '24 hours'
            );
            INSERT INTO applications (id, client_id, pan_masked, recent_application_elsewhere,
                pan_ciphertext, pan_blind_index, pan_index_key_id, personal_ciphertext,
                requested_amount, monthly_income, loan_type)
            VALUES (p_id, p_client_id, p_pan_masked, v_elsewhere, p_pan_ciphertext,
                p_blind_index, p_index_key_id, p_personal_ciphertext, p_requested_amount,
                p_monthly_income, p_loan_type)
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
    """Back to one key: rows under any key but `v0` would no longer be found by the old rule."""
    op.execute(f"DROP FUNCTION submit_application({_SIGNATURE})")
    op.execute("ALTER TABLE idempotency_keys DROP COLUMN index_key_id")
    op.execute("DROP INDEX ix_applications_pan_index_key_id")
    op.execute("ALTER TABLE applications DROP COLUMN pan_index_key_id")
    op.execute(_PREVIOUS_FUNCTION)


# 0007's function, as 0007 created it.
_PREVIOUS_FUNCTION = """
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
