"""Decision rules (DESIGN.md, "Business rules"), at their boundaries, with reasons and trace."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from decision_service.policy import DecisionPolicy, ManualReviewOffer
from decision_service.reasons import ReasonCode
from decision_service.rules import Applicant, Decision, FinalStatus, decide

DEFAULT = DecisionPolicy()
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _decide(
    score: int,
    income: Decimal | int | str,
    amount: Decimal | int | str,
    policy: DecisionPolicy = DEFAULT,
    *,
    recent: bool = False,
) -> Decision:
    applicant = Applicant(
        credit_score=score,
        monthly_income=Decimal(income),
        requested_amount=Decimal(amount),
        recent_application_elsewhere=recent,
    )
    return decide(applicant, policy, NOW)


def test_score_649_is_rejected_and_650_is_not() -> None:
    rejected = _decide(649, 100_000, 1000)
    approved = _decide(650, 100_000, 1000)
    assert rejected.status is FinalStatus.REJECTED
    assert rejected.reason_codes == (ReasonCode.CREDIT_SCORE_BELOW_MINIMUM,)
    assert "649" in rejected.reason
    assert "650" in rejected.reason
    assert rejected.max_approved_amount is None
    assert rejected.offer is None
    assert approved.status is FinalStatus.PRE_APPROVED


def test_configured_minimum_score_moves_the_boundary() -> None:
    strict = DecisionPolicy(min_credit_score=700)
    assert _decide(699, 100_000, 1000, strict).status is FinalStatus.REJECTED
    assert _decide(700, 100_000, 1000, strict).status is FinalStatus.PRE_APPROVED


def test_income_exactly_amount_over_term_goes_to_manual_review() -> None:
    # 48,000 / 48 = 1,000: not strictly greater.
    decision = _decide(700, 1000, 48_000)
    assert decision.status is FinalStatus.MANUAL_REVIEW
    assert decision.max_approved_amount is None
    assert decision.offer is None  # the default policy makes no offer for review
    assert decision.reason_codes == (
        ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT,
        ReasonCode.CREDIT_SCORE_MEETS_MINIMUM,
    )
    assert "review" in decision.reason


def test_income_a_cent_above_amount_over_term_is_pre_approved_with_income_times_term() -> None:
    decision = _decide(700, "1000.01", 48_000)
    assert decision.status is FinalStatus.PRE_APPROVED
    assert decision.max_approved_amount == Decimal("48000.48")
    assert decision.reason_codes == (
        ReasonCode.CREDIT_SCORE_MEETS_MINIMUM,
        ReasonCode.INCOME_SUFFICIENT_FOR_AMOUNT,
    )


def test_amount_not_divisible_by_term_is_compared_exactly() -> None:
    # 100,000 / 48 = 2083.333…; 2083.33 is below it, 2083.34 above.
    assert _decide(700, "2083.33", 100_000).status is FinalStatus.MANUAL_REVIEW
    assert _decide(700, "2083.34", 100_000).status is FinalStatus.PRE_APPROVED


def test_configured_term_changes_income_test_and_max_amount() -> None:
    short_term = DecisionPolicy(term_months=12)
    # 4,000 a month covers 48,000 over the default 48 months, but not over 12 (exactly equal).
    assert _decide(700, 4000, 48_000).status is FinalStatus.PRE_APPROVED
    assert _decide(700, 4000, 48_000, short_term).status is FinalStatus.MANUAL_REVIEW
    approved = _decide(700, 4001, 48_000, short_term)
    assert approved.status is FinalStatus.PRE_APPROVED
    assert approved.max_approved_amount == Decimal(48_012)
    assert approved.offer is not None
    assert approved.offer.term_months == 12


def test_low_score_is_rejected_even_with_high_income() -> None:
    assert _decide(300, 10**6, 1).status is FinalStatus.REJECTED


def test_a_rejection_names_every_adverse_reason_score_first() -> None:
    decision = _decide(600, 1000, 48_000)
    assert decision.status is FinalStatus.REJECTED
    assert decision.reason_codes == (
        ReasonCode.CREDIT_SCORE_BELOW_MINIMUM,
        ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT,
    )
    assert decision.reason.startswith("Credit score 600 is below the minimum of 650.")


def test_a_recent_application_elsewhere_is_rejected_and_leads_the_reasons() -> None:
    decision = _decide(790, 100_000, 1000, recent=True)
    assert decision.status is FinalStatus.REJECTED
    assert decision.reason_codes == (ReasonCode.RECENT_APPLICATION_EXISTS,)
    both = _decide(600, 100_000, 1000, recent=True)
    assert both.reason_codes == (
        ReasonCode.RECENT_APPLICATION_EXISTS,
        ReasonCode.CREDIT_SCORE_BELOW_MINIMUM,
    )


@pytest.mark.parametrize(
    ("score", "rate"),
    [(650, "0.1750"), (699, "0.1750"), (700, "0.1450"), (749, "0.1450"), (750, "0.1200")],
)
def test_the_offer_is_priced_by_the_score_band_at_each_boundary(score: int, rate: str) -> None:
    decision = _decide(score, 85_000, 500_000)
    assert decision.offer is not None
    assert decision.offer.annual_rate == Decimal(rate)
    assert decision.offer.amount == Decimal("500000.00")
    assert decision.offer.currency == "INR"
    assert decision.offer.expires_at == datetime(2027, 1, 1, 8, 0, tzinfo=UTC)


def test_an_amount_above_the_policy_maximum_is_offered_the_maximum() -> None:
    policy = DecisionPolicy.model_validate({"limits": {"maxOfferAmount": "400000.00"}})
    at_limit = _decide(790, 85_000, 400_000, policy)
    above = _decide(790, 85_000, "400000.01", policy)
    assert at_limit.offer is not None
    assert above.offer is not None
    assert ReasonCode.OFFER_LIMITED_TO_POLICY_MAXIMUM not in at_limit.reason_codes
    assert above.reason_codes[-1] is ReasonCode.OFFER_LIMITED_TO_POLICY_MAXIMUM
    assert above.offer.amount == Decimal("400000.00")


def test_manual_review_carries_a_reduced_offer_only_where_the_policy_allows() -> None:
    generous = DecisionPolicy(manual_review_offer=ManualReviewOffer(enabled=True))
    # Capacity 40,000 × 48 = 1,920,000; half is 960,000.
    review = _decide(700, 40_000, 5_000_000, generous)
    assert review.status is FinalStatus.MANUAL_REVIEW
    assert review.offer is not None
    assert review.offer.amount == Decimal("960000.00")
    assert review.reason_codes[-1] is ReasonCode.REDUCED_OFFER_FOR_REVIEW
    # 1,999 × 48 = 95,952; half is 47,976, rounded down to 47,000.
    small = _decide(700, 1999, 5_000_000, generous)
    assert small.offer is not None
    assert small.offer.amount == Decimal("47000.00")
    # Below 1,000 after rounding: no offer at all.
    assert _decide(700, 41, 5_000_000, generous).offer is None
    assert _decide(700, 40_000, 5_000_000).offer is None


def test_the_trace_lists_every_rule_with_its_inputs_and_whether_it_fired() -> None:
    decision = _decide(610, 85_000, 500_000)
    trace = {r.rule: r for r in decision.trace}
    assert set(trace) == {
        "recent_application_elsewhere",
        "credit_score_below_minimum",
        "income_covers_amount",
        "score_band",
    }
    assert trace["credit_score_below_minimum"].fired
    assert trace["credit_score_below_minimum"].inputs == {
        "credit_score": 610,
        "min_credit_score": 650,
    }
    assert trace["income_covers_amount"].fired  # evaluated although the score decided
    assert not trace["recent_application_elsewhere"].fired
    assert decision.policy_version == DEFAULT.version


def test_a_tiny_amount_the_fee_would_swallow_gets_no_offer() -> None:
    decision = _decide(790, 85_000, 1000)  # minimum fee 1,000 ≥ the amount
    assert decision.status is FinalStatus.PRE_APPROVED
    assert decision.offer is None


def test_term_below_one_month_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"term_months|termMonths"):
        DecisionPolicy(term_months=0)
