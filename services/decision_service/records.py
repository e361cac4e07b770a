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
INSERT_DECISION_SQL = (
    "INSERT INTO decisions (application_id, status, reason_codes, reasons, policy_version, "
    "trace, offer_amount, offer_term_months, offer_annual_rate, offer_processing_fee, "
    "offer_apr, offer_emi, offer_currency, offer_expires_at, decided_at) "
    "VALUES (%s, %s, %s, %s::jsonb, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INSERT_SHADOW_SQL = (
    "INSERT INTO shadow_decisions (application_id, policy_version, champion_version, status, "
    "champion_status, reason_codes, reasons, trace, offer, decided_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s)"
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


def _reasons(decision: Decision) -> tuple[list[str], str, str]:
    return (
        [code.value for code in decision.reason_codes],
        json.dumps([r.as_json() for r in decision.reasons]),
        json.dumps([rule.as_json() for rule in decision.trace]),
    )


def insert_decision(
    conn: psycopg.Connection[Any],
    application_id: uuid.UUID,
    decision: Decision,
    decided_at: datetime,
) -> None:
    offer = decision.offer
    terms: tuple[object, ...] = (None,) * 8
    if offer is not None:
        terms = (
            offer.amount,
            offer.term_months,
            offer.annual_rate,
            offer.processing_fee,
            offer.apr,
            offer.emi,
            offer.currency,
            offer.expires_at,
        )
    codes, reasons, trace = _reasons(decision)
    conn.execute(
        INSERT_DECISION_SQL,
        (
            application_id,
            decision.status.value,
            codes,
            reasons,
            decision.policy_version,
            trace,
            *terms,
            decided_at,
        ),
    )


def insert_shadow(
    conn: psycopg.Connection[Any],
    application_id: uuid.UUID,
    shadow: Decision,
    champion: Decision,
    decided_at: datetime,
) -> None:
    """The challenger's outcome, recorded beside the real one and never applied."""
    codes, reasons, trace = _reasons(shadow)
    offer = None if shadow.offer is None else json.dumps(shadow.offer.as_json())
    conn.execute(
        INSERT_SHADOW_SQL,
        (
            application_id,
            shadow.policy_version,
            champion.policy_version,
            shadow.status.value,
            champion.status.value,
            codes,
            reasons,
            trace,
            offer,
            decided_at,
        ),
    )
