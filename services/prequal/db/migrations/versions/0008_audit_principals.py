"""An audit that names who: principal, request or event id, purpose and outcome; append-only.

- `audit_log` gains `principal` (the OAuth2 client id for the API's rows, the service for a
  consumer's), `request_id` (the API request's X-Request-ID), `event_id` (the CloudEvents id a
  consumer was handling), `purpose` (why the data was touched) and `outcome` (`ok`, `failed`,
  `refused`): a failed decryption and a refused read are rows too.
- The action `read` (a status read, or a refused one) joins the actions.
- Rows written inside a database function (`submit_application`, which this migration does not
  touch) take the principal, request id and purpose from transaction-local settings that the
  caller sets with `audit_context()`, in the same statement; otherwise the principal defaults
  to the database role (`current_user`), which names the service once each service has its own
  role (docs/database-roles.md).
- A trigger refuses UPDATE, DELETE and TRUNCATE on `audit_log` for every role; only the table's
  owner (the migrations role) could drop the trigger.

Existing rows keep their history: their principal is their actor, their purpose their detail.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _setting(name: str) -> str:
    """A transaction-local setting, NULL when unset or reset to '' at the end of a transaction."""
    return f"nullif(current_setting('prequal.audit_{name}', true), '')"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE audit_log
            ADD COLUMN principal text,
            ADD COLUMN request_id text DEFAULT {_setting("request_id")},
            ADD COLUMN event_id uuid,
            ADD COLUMN purpose text,
            ADD COLUMN outcome text NOT NULL DEFAULT 'ok',
            ADD CONSTRAINT ck_audit_log_outcome CHECK (outcome IN ('ok', 'failed', 'refused'))
        """
    )
    op.execute("UPDATE audit_log SET principal = actor, purpose = coalesce(detail, action)")
    op.execute(
        f"""
        ALTER TABLE audit_log
            ALTER COLUMN principal SET DEFAULT coalesce({_setting("principal")}, current_user),
            ALTER COLUMN principal SET NOT NULL,
            ALTER COLUMN purpose SET DEFAULT coalesce({_setting("purpose")}, 'unspecified'),
            ALTER COLUMN purpose SET NOT NULL
        """
    )
    # "What did client Y read since T": by principal, newest first.
    op.execute("CREATE INDEX ix_audit_log_principal_at ON audit_log (principal, at)")
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask', 'consent', 'erase', 'read'))"
    )
    # Sets who, why and for which request the rows written by this statement's database
    # functions are; returns `actor` so it can stand where the actor argument goes (its
    # arguments are evaluated before the function they are passed to runs).
    op.execute(
        """
        CREATE FUNCTION audit_context(
            p_actor text, p_principal text, p_request_id text, p_purpose text
        ) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM set_config('prequal.audit_principal', coalesce(p_principal, ''), true);
            PERFORM set_config('prequal.audit_request_id', coalesce(p_request_id, ''), true);
            PERFORM set_config('prequal.audit_purpose', coalesce(p_purpose, ''), true);
            RETURN p_actor;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'audit rows are never changed or removed; erasure keeps them';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.execute("DROP FUNCTION audit_context(text, text, text, text)")
    op.execute("DELETE FROM audit_log WHERE action = 'read'")
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask', 'consent', 'erase'))"
    )
    op.execute("DROP INDEX ix_audit_log_principal_at")
    op.execute(
        "ALTER TABLE audit_log DROP COLUMN outcome, DROP COLUMN purpose, DROP COLUMN event_id, "
        "DROP COLUMN request_id, DROP COLUMN principal"
    )
