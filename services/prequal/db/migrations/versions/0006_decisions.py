"""Decisions a lender can explain: policy documents, decisions with their trace, consents.

- `policy_documents`: each distinct decision policy once, under its version (a content hash
  of the canonical JSON, which is kept as text so the hash can be checked again).
- `decisions`: one row per decided application: the ranked reasons, the policy version that
  decided, the rule trace and the indicative offer (typed columns, all set or all NULL).
- `shadow_decisions`: what a challenger policy would have decided, beside the real decision
  (never applied, never notified).
- `consents`: the applicant's consent to a soft credit inquiry, stored with the submission.
- `audit_log` learns the action `consent`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OFFER_COLUMNS = (
    "offer_amount",
    "offer_term_months",
    "offer_annual_rate",
    "offer_processing_fee",
    "offer_apr",
    "offer_emi",
    "offer_currency",
    "offer_expires_at",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE policy_documents (
            version text PRIMARY KEY,
            document text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_policy_documents_json CHECK (document::jsonb IS NOT NULL)
        )
        """
    )
    all_null = " AND ".join(f"{c} IS NULL" for c in _OFFER_COLUMNS)
    none_null = " AND ".join(f"{c} IS NOT NULL" for c in _OFFER_COLUMNS)
    op.execute(
        f"""
        CREATE TABLE decisions (
            application_id uuid PRIMARY KEY REFERENCES applications (id),
            status text NOT NULL,
            reason_codes text[] NOT NULL,
            reasons jsonb NOT NULL,
            policy_version text NOT NULL REFERENCES policy_documents (version),
            trace jsonb NOT NULL,
            offer_amount numeric(14, 2),
            offer_term_months integer,
            offer_annual_rate numeric(5, 4),
            offer_processing_fee numeric(14, 2),
            offer_apr numeric(5, 4),
            offer_emi numeric(14, 2),
            offer_currency text,
            offer_expires_at timestamptz,
            decided_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_decisions_status
                CHECK (status IN ('PRE_APPROVED', 'REJECTED', 'MANUAL_REVIEW')),
            CONSTRAINT ck_decisions_reason_count
                CHECK (cardinality(reason_codes) BETWEEN 1 AND 4),
            CONSTRAINT ck_decisions_offer CHECK (({all_null}) OR ({none_null}))
        )
        """
    )
    op.execute("CREATE INDEX ix_decisions_policy_version ON decisions (policy_version)")
    op.execute(
        """
        CREATE TABLE shadow_decisions (
            application_id uuid NOT NULL REFERENCES applications (id),
            policy_version text NOT NULL REFERENCES policy_documents (version),
            champion_version text NOT NULL REFERENCES policy_documents (version),
            status text NOT NULL,
            champion_status text NOT NULL,
            reason_codes text[] NOT NULL,
            reasons jsonb NOT NULL,
            trace jsonb NOT NULL,
            offer jsonb,
            decided_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_shadow_decisions PRIMARY KEY (application_id, policy_version),
            CONSTRAINT ck_shadow_decisions_status
                CHECK (status IN ('PRE_APPROVED', 'REJECTED', 'MANUAL_REVIEW'))
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_shadow_decisions_policy_version ON shadow_decisions (policy_version)"
    )
    op.execute(
        """
        CREATE TABLE consents (
            application_id uuid PRIMARY KEY REFERENCES applications (id),
            soft_inquiry boolean NOT NULL,
            text_version text NOT NULL,
            captured_at timestamptz NOT NULL,
            channel text NOT NULL,
            actor text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ck_consents_soft_inquiry CHECK (soft_inquiry)
        )
        """
    )
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask', 'consent'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM audit_log WHERE action = 'consent'")
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT ck_audit_log_action")
    op.execute(
        "ALTER TABLE audit_log ADD CONSTRAINT ck_audit_log_action "
        "CHECK (action IN ('encrypt', 'decrypt', 'mask'))"
    )
    op.execute("DROP TABLE consents")
    op.execute("DROP TABLE shadow_decisions")
    op.execute("DROP TABLE decisions")
    op.execute("DROP TABLE policy_documents")
