"""Where decisions are written (migration 0006): policy texts, decisions, shadow decisions.

Everything here runs inside the consumer's transaction, beside the application's update, so a
decision row exists exactly when the application is final.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import psycopg

from decision_service.policy import DecisionPolicy
from decision_service.rules import Decision

STORE_POLICY_SQL = (
    "INSERT INTO policy_documents (version, document) VALUES (%s, %s) "
    "ON CONFLICT (version) DO NOTHING"
)
CHECK_POLICY_SQL = "SELECT document FROM policy_documents WHERE version = %s"
# A batch's decisions in one statement: the rows travel as one JSON array (one `json.dumps`,
# one parameter) and PostgreSQL types them with jsonb_to_recordset.
INSERT_DECISIONS_SQL = (
    "INSERT INTO decisions (application_id, status, reason_codes, reasons, policy_version, "
    "trace, offer_amount, offer_term_months, offer_annual_rate, offer_processing_fee, "
    "offer_apr, offer_emi, offer_currency, offer_expires_at, decided_at) "
    "SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(application_id uuid, status text, "
    "reason_codes text[], reasons jsonb, policy_version text, trace jsonb, offer_amount numeric, "
    "offer_term_months integer, offer_annual_rate numeric, offer_processing_fee numeric, "
    "offer_apr numeric, offer_emi numeric, offer_currency text, offer_expires_at timestamptz, "
    "decided_at timestamptz)"
)
# With a challenger: its shadow decisions in the same statement.
INSERT_DECISIONS_AND_SHADOWS_SQL = (
    "WITH decided AS (INSERT INTO decisions (application_id, status, reason_codes, reasons, "
    "policy_version, trace, offer_amount, offer_term_months, offer_annual_rate, "
    "offer_processing_fee, offer_apr, offer_emi, offer_currency, offer_expires_at, decided_at) "
    "SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(application_id uuid, status text, "
    "reason_codes text[], reasons jsonb, policy_version text, trace jsonb, offer_amount numeric, "
    "offer_term_months integer, offer_annual_rate numeric, offer_processing_fee numeric, "
    "offer_apr numeric, offer_emi numeric, offer_currency text, offer_expires_at timestamptz, "
    "decided_at timestamptz)) "
    "INSERT INTO shadow_decisions (application_id, policy_version, champion_version, status, "
    "champion_status, reason_codes, reasons, trace, offer, decided_at) "
    "SELECT * FROM jsonb_to_recordset(%s::jsonb) AS s(application_id uuid, "
    "policy_version text, champion_version text, status text, champion_status text, "
    "reason_codes text[], reasons jsonb, trace jsonb, offer jsonb, decided_at timestamptz)"
)


class PolicyVersionCollisionError(Exception):
    """Another policy text is stored under this policy's version: no decision may cite it."""


def store_policy(conn: psycopg.Connection[Any], policy: DecisionPolicy) -> None:
    """Keeps the policy's text under its version (idempotent), and checks what is there."""
    conn.execute(STORE_POLICY_SQL, (policy.version, policy.text))
    stored = conn.execute(CHECK_POLICY_SQL, (policy.version,)).fetchone()
    if stored is None or stored[0] != policy.text:
        raise PolicyVersionCollisionError(
            f"policy_documents holds another text under version {policy.version}; "
            "compare it with this policy before deciding anything"
        )


Row = dict[str, object]


def decision_row(application_id: uuid.UUID, decision: Decision, decided_at: datetime) -> Row:
    """The `decisions` row of one decision, as jsonb_to_recordset reads it."""
    offer = decision.offer
    return {
        "application_id": str(application_id),
        "status": decision.status.value,
        "reason_codes": [code.value for code in decision.reason_codes],
        "reasons": [r.as_json() for r in decision.reasons],
        "policy_version": decision.policy_version,
        "trace": [rule.as_json() for rule in decision.trace],
        "offer_amount": None if offer is None else str(offer.amount),
        "offer_term_months": None if offer is None else offer.term_months,
        "offer_annual_rate": None if offer is None else str(offer.annual_rate),
        "offer_processing_fee": None if offer is None else str(offer.processing_fee),
        "offer_apr": None if offer is None else str(offer.apr),
        "offer_emi": None if offer is None else str(offer.emi),
        "offer_currency": None if offer is None else offer.currency,
        "offer_expires_at": None if offer is None else offer.expires_at.isoformat(),
        "decided_at": decided_at.isoformat(),
    }


def shadow_row(
    application_id: uuid.UUID, shadow: Decision, champion: Decision, decided_at: datetime
) -> Row:
    """The challenger's outcome, recorded beside the real one and never applied."""
    return {
        "application_id": str(application_id),
        "policy_version": shadow.policy_version,
        "champion_version": champion.policy_version,
        "status": shadow.status.value,
        "champion_status": champion.status.value,
        "reason_codes": [code.value for code in shadow.reason_codes],
        "reasons": [r.as_json() for r in shadow.reasons],
        "trace": [rule.as_json() for rule in shadow.trace],
        "offer": None if shadow.offer is None else shadow.offer.as_json(),
        "decided_at": decided_at.isoformat(),
    }


def insert_decisions(
    conn: psycopg.Connection[Any], decisions: list[Row], shadows: list[Row] | None
) -> None:
    """Every decision of a batch (and the challenger's, when there is one) in one statement."""
    if shadows is None:
        conn.execute(INSERT_DECISIONS_SQL, (json.dumps(decisions),))
    else:
        conn.execute(INSERT_DECISIONS_AND_SHADOWS_SQL, (json.dumps(decisions), json.dumps(shadows)))
