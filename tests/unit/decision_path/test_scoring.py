"""Credit scoring rules (DESIGN.md, "Business rules")."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from credit_service import scoring
from credit_service.scoring import (
    BASE_SCORE,
    LoanType,
    ScoreInput,
    credit_score,
    income_adjustment,
    variation,
)

APP = uuid.UUID("00000000-0000-4000-8000-000000000001")
SYNTHETIC_PAN = "KLMNO4321P"


def _score(
    income: str = "50000",
    loan_type: LoanType = LoanType.AUTO,
    pan: str = SYNTHETIC_PAN,
    app: uuid.UUID = APP,
) -> int:
    return credit_score(ScoreInput(app, pan, Decimal(income), loan_type))


@pytest.mark.parametrize(("pan", "expected"), [("ABCDE1234F", 790), ("FGHIJ5678K", 610)])
def test_test_pans_have_fixed_scores_whatever_the_income_or_loan_type(
    pan: str, expected: int
) -> None:
    for income in ("0", "10000", "100000"):
        for loan_type in LoanType:
            assert _score(income, loan_type, pan=pan) == expected


def test_variation_is_within_five_points_and_covers_the_whole_range() -> None:
    seen = {variation(uuid.UUID(int=i)) for i in range(2000)}
    assert seen == set(range(-5, 6))


def test_score_is_deterministic_per_application_id() -> None:
    first = [_score(app=uuid.UUID(int=i)) for i in range(50)]
    again = [_score(app=uuid.UUID(int=i)) for i in range(50)]
    assert first == again
    assert len(set(first)) > 1, "different applications should not all share one variation"


def test_base_score_with_neutral_income_and_auto_loan_is_650_plus_variation() -> None:
    assert _score("50000", LoanType.AUTO) == BASE_SCORE + variation(APP)


@pytest.mark.parametrize(
    ("income", "adjustment"),
    [
        ("75000.01", 40),  # strictly above 75,000
        ("75000", 0),
        ("30000", 0),
        ("29999.99", -20),  # strictly below 30,000
        ("0", -20),
    ],
)
def test_income_adjustment_boundaries(income: str, adjustment: int) -> None:
    assert income_adjustment(Decimal(income)) == adjustment
    assert _score(income, LoanType.AUTO) == BASE_SCORE + adjustment + variation(APP)


@pytest.mark.parametrize(
    ("loan_type", "adjustment"),
    [(LoanType.PERSONAL, -10), (LoanType.HOME, 10), (LoanType.AUTO, 0)],
)
def test_loan_type_adjustment(loan_type: LoanType, adjustment: int) -> None:
    assert _score("50000", loan_type) == BASE_SCORE + adjustment + variation(APP)


def test_score_is_clamped_to_300_900(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "BASE_SCORE", 2000)
    assert _score() == 900
    monkeypatch.setattr(scoring, "BASE_SCORE", -2000)
    assert _score() == 300
