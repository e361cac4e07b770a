"""Decision rules (DESIGN.md, "Business rules"), at their boundaries."""

from __future__ import annotations

from decimal import Decimal

import pytest

from decision_service.rules import DecisionPolicy, FinalStatus, decide

DEFAULT = DecisionPolicy()


def test_score_649_is_rejected_and_650_is_not() -> None:
    rejected = decide(649, Decimal(100_000), Decimal(1000), DEFAULT)
    approved = decide(650, Decimal(100_000), Decimal(1000), DEFAULT)
    assert rejected.status is FinalStatus.REJECTED
    assert "649" in rejected.reason
    assert "650" in rejected.reason
    assert rejected.max_approved_amount is None
    assert approved.status is FinalStatus.PRE_APPROVED


def test_configured_minimum_score_moves_the_boundary() -> None:
    strict = DecisionPolicy(min_credit_score=700)
    assert decide(699, Decimal(100_000), Decimal(1000), strict).status is FinalStatus.REJECTED
    assert decide(700, Decimal(100_000), Decimal(1000), strict).status is FinalStatus.PRE_APPROVED


def test_income_exactly_amount_over_term_goes_to_manual_review() -> None:
    # 48,000 / 48 = 1,000: not strictly greater.
    decision = decide(700, Decimal(1000), Decimal(48_000), DEFAULT)
    assert decision.status is FinalStatus.MANUAL_REVIEW
    assert decision.max_approved_amount is None
    assert "review" in decision.reason


def test_income_a_cent_above_amount_over_term_is_pre_approved_with_income_times_term() -> None:
    decision = decide(700, Decimal("1000.01"), Decimal(48_000), DEFAULT)
    assert decision.status is FinalStatus.PRE_APPROVED
    assert decision.max_approved_amount == Decimal("48000.48")


def test_amount_not_divisible_by_term_is_compared_exactly() -> None:
    # 100,000 / 48 = 2083.333…; 2083.33 is below it, 2083.34 above.
    assert decide(700, Decimal("2083.33"), Decimal(100_000), DEFAULT).status is (
        FinalStatus.MANUAL_REVIEW
    )
    assert decide(700, Decimal("2083.34"), Decimal(100_000), DEFAULT).status is (
        FinalStatus.PRE_APPROVED
    )


def test_configured_term_changes_income_test_and_max_amount() -> None:
    short_term = DecisionPolicy(term_months=12)
    # 4,000 a month covers 48,000 over the default 48 months, but not over 12 (exactly equal).
    assert decide(700, Decimal(4000), Decimal(48_000), DEFAULT).status is FinalStatus.PRE_APPROVED
    assert decide(700, Decimal(4000), Decimal(48_000), short_term).status is (
        FinalStatus.MANUAL_REVIEW
    )
    approved = decide(700, Decimal(4001), Decimal(48_000), short_term)
    assert approved.status is FinalStatus.PRE_APPROVED
    assert approved.max_approved_amount == Decimal(48_012)


def test_low_score_is_rejected_even_with_high_income() -> None:
    assert decide(300, Decimal(10**6), Decimal(1), DEFAULT).status is FinalStatus.REJECTED


def test_term_below_one_month_is_refused() -> None:
    with pytest.raises(ValueError, match="term_months"):
        DecisionPolicy(term_months=0)
