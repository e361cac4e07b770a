"""The credit score: a pure function of the application, deterministic per application id.

The rules are DESIGN.md's. Two test PANs have fixed scores so that demos and tests can pick an
outcome; every other PAN starts from a base and moves with income and loan type, plus a small
variation derived from the application id (never from the PAN, and never random: re-scoring the
same application always gives the same report).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

MIN_SCORE = 300
MAX_SCORE = 900
BASE_SCORE = 650
HIGH_INCOME = Decimal(75_000)
LOW_INCOME = Decimal(30_000)
HIGH_INCOME_BONUS = 40
LOW_INCOME_PENALTY = -20
VARIATION = 5

# Documented test PANs with fixed scores (DESIGN.md); not real identities.
TEST_PAN_SCORES = {"ABCDE1234F": 790, "FGHIJ5678K": 610}


class LoanType(StrEnum):
    PERSONAL = "PERSONAL"
    HOME = "HOME"
    AUTO = "AUTO"


LOAN_TYPE_ADJUSTMENT = {LoanType.PERSONAL: -10, LoanType.HOME: 10, LoanType.AUTO: 0}


@dataclass(frozen=True)
class ScoreInput:
    application_id: uuid.UUID
    pan: str
    monthly_income: Decimal
    loan_type: LoanType


def variation(application_id: uuid.UUID) -> int:
    """A stable offset in -5..+5 from the application id's SHA-256 (stable across processes,
    Python versions and machines, unlike `hash()`)."""
    digest = hashlib.sha256(application_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") % (2 * VARIATION + 1) - VARIATION


def income_adjustment(monthly_income: Decimal) -> int:
    if monthly_income > HIGH_INCOME:
        return HIGH_INCOME_BONUS
    if monthly_income < LOW_INCOME:
        return LOW_INCOME_PENALTY
    return 0


def credit_score(application: ScoreInput) -> int:
    fixed = TEST_PAN_SCORES.get(application.pan)
    if fixed is not None:
        return fixed
    score = (
        BASE_SCORE
        + income_adjustment(application.monthly_income)
        + LOAN_TYPE_ADJUSTMENT[application.loan_type]
        + variation(application.application_id)
    )
    return max(MIN_SCORE, min(MAX_SCORE, score))
