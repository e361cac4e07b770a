"""The decision: pure functions of the applicant's figures, the policy and the time of deciding.

Each rule is a function that returns what it looked at and whether it fired; `decide` runs every
rule (so the trace is complete even where an earlier rule already settled the outcome), then
reads the outcome, the ranked reasons and the offer off the results. Nothing here touches a
database or a clock, so every boundary is a unit test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from decision_service.offer import Offer, make_offer, round_down_to_thousands
from decision_service.policy import DecisionPolicy
from decision_service.reasons import Reason, ReasonCode, ranked, reason, summary


class FinalStatus(StrEnum):
    PRE_APPROVED = "PRE_APPROVED"
    REJECTED = "REJECTED"
    MANUAL_REVIEW = "MANUAL_REVIEW"


@dataclass(frozen=True)
class Applicant:
    """What a decision is made from: the score, and the application's own stored figures."""

    credit_score: int
    monthly_income: Decimal
    requested_amount: Decimal
    loan_type: str = "PERSONAL"
    # Set when another client submitted the same PAN in the last 24 hours.
    recent_application_elsewhere: bool = False


@dataclass(frozen=True)
class RuleResult:
    rule: str
    inputs: Mapping[str, str | int | bool]
    fired: bool
    result: str | None = None

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"rule": self.rule, "inputs": dict(self.inputs)}
        entry["fired"] = self.fired
        if self.result is not None:
            entry["result"] = self.result
        return entry


@dataclass(frozen=True)
class Decision:
    status: FinalStatus
    reasons: tuple[Reason, ...]
    policy_version: str
    trace: tuple[RuleResult, ...] = field(default=())
    max_approved_amount: Decimal | None = None
    offer: Offer | None = None

    @property
    def reason(self) -> str:
        """`decision_reason`, built from the reasons."""
        return summary(self.reasons)

    @property
    def reason_codes(self) -> tuple[ReasonCode, ...]:
        return tuple(r.code for r in self.reasons)


# -- the rules -------------------------------------------------------------------------------


def recent_application(applicant: Applicant) -> RuleResult:
    return RuleResult(
        "recent_application_elsewhere",
        {"recent_application_elsewhere": applicant.recent_application_elsewhere},
        fired=applicant.recent_application_elsewhere,
    )


def score_below_minimum(credit_score: int, policy: DecisionPolicy) -> RuleResult:
    return RuleResult(
        "credit_score_below_minimum",
        {"credit_score": credit_score, "min_credit_score": policy.min_credit_score},
        fired=credit_score < policy.min_credit_score,
    )


def income_covers_amount(applicant: Applicant, policy: DecisionPolicy) -> RuleResult:
    # income > amount / term, compared as income × term > amount: exact in Decimal.
    capacity = applicant.monthly_income * policy.term_months
    return RuleResult(
        "income_covers_amount",
        {
            "monthly_income": str(applicant.monthly_income),
            "requested_amount": str(applicant.requested_amount),
            "term_months": policy.term_months,
        },
        fired=capacity > applicant.requested_amount,
        result=str(capacity),
    )


def score_band(credit_score: int, policy: DecisionPolicy) -> RuleResult:
    band = policy.band_for(credit_score)
    return RuleResult(
        "score_band",
        {"credit_score": credit_score},
        fired=band is not None,
        result=None if band is None else f"{band.name} {band.annual_rate}",
    )


def offer_limit(amount: Decimal, policy: DecisionPolicy) -> RuleResult:
    maximum = policy.limits.max_offer_amount
    return RuleResult(
        "offer_above_policy_maximum",
        {"amount": str(amount), "max_offer_amount": str(maximum)},
        fired=amount > maximum,
        result=str(min(amount, maximum)),
    )


def reduced_offer_amount(capacity: Decimal, policy: DecisionPolicy) -> RuleResult:
    allowed = policy.manual_review_offer
    amount = round_down_to_thousands(capacity * allowed.share_of_capacity)
    return RuleResult(
        "reduced_offer_for_review",
        {
            "enabled": allowed.enabled,
            "capacity": str(capacity),
            "share_of_capacity": str(allowed.share_of_capacity),
        },
        fired=allowed.enabled and amount > 0,
        result=str(amount),
    )


# -- the decision ----------------------------------------------------------------------------


def decide(applicant: Applicant, policy: DecisionPolicy, decided_at: datetime) -> Decision:
    score = applicant.credit_score
    figures = {
        "credit_score": score,
        "min_credit_score": policy.min_credit_score,
        "monthly_income": applicant.monthly_income,
        "requested_amount": applicant.requested_amount,
        "term_months": policy.term_months,
        "max_offer_amount": policy.limits.max_offer_amount,
    }
    recent = recent_application(applicant)
    below = score_below_minimum(score, policy)
    income = income_covers_amount(applicant, policy)
    band = score_band(score, policy)
    trace = [recent, below, income, band]
    adverse: list[Reason] = []
    if recent.fired:
        adverse.append(reason(ReasonCode.RECENT_APPLICATION_EXISTS))
    if below.fired:
        adverse.append(reason(ReasonCode.CREDIT_SCORE_BELOW_MINIMUM, **figures))
    if not income.fired:
        adverse.append(reason(ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT, **figures))

    if recent.fired or below.fired:
        return Decision(FinalStatus.REJECTED, ranked(adverse), policy.version, tuple(trace))

    meets = reason(ReasonCode.CREDIT_SCORE_MEETS_MINIMUM, **figures)
    rate = policy.band_for(score)
    assert rate is not None  # the policy guarantees a band for every approvable score
    capacity = applicant.monthly_income * policy.term_months
    if income.fired:
        limit = offer_limit(applicant.requested_amount, policy)
        trace.append(limit)
        reasons = [meets, reason(ReasonCode.INCOME_SUFFICIENT_FOR_AMOUNT, **figures)]
        if limit.fired:
            reasons.append(reason(ReasonCode.OFFER_LIMITED_TO_POLICY_MAXIMUM, **figures))
        offer = _offer(Decimal(str(limit.result)), rate.annual_rate, policy, decided_at)
        return Decision(
            FinalStatus.PRE_APPROVED,
            ranked(reasons),
            policy.version,
            tuple(trace),
            max_approved_amount=capacity,
            offer=offer,
        )

    reduced = reduced_offer_amount(capacity, policy)
    trace.append(reduced)
    offer = None
    if reduced.fired:
        limit = offer_limit(Decimal(str(reduced.result)), policy)
        trace.append(limit)
        offer = _offer(Decimal(str(limit.result)), rate.annual_rate, policy, decided_at)
    reasons = [*adverse, meets]
    if offer is not None:
        reasons.append(reason(ReasonCode.REDUCED_OFFER_FOR_REVIEW, offer_amount=offer.amount))
    return Decision(
        FinalStatus.MANUAL_REVIEW, ranked(reasons), policy.version, tuple(trace), offer=offer
    )


def _offer(
    amount: Decimal, annual_rate: Decimal, policy: DecisionPolicy, decided_at: datetime
) -> Offer | None:
    return make_offer(
        amount,
        annual_rate,
        term_months=policy.term_months,
        fee=policy.processing_fee,
        decided_at=decided_at,
        validity_days=policy.offer_validity_days,
    )
