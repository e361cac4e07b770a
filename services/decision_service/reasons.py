"""Reason codes: the stable enum every decision explains itself with (docs/decisions.md).

A code never changes meaning and is never reused; new codes are appended. Each code has a
template of readable text, rendered with the decision's own figures, because a lender owes the
applicant *specific* reasons (the score and the minimum, not only "score too low"). A decision
carries one to four reasons, most important first: what decided the outcome leads, what else
counted against the applicant follows, and what qualified the offer comes last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

MAX_REASONS = 4


class ReasonCode(StrEnum):
    RECENT_APPLICATION_EXISTS = "RECENT_APPLICATION_EXISTS"
    CREDIT_SCORE_BELOW_MINIMUM = "CREDIT_SCORE_BELOW_MINIMUM"
    INCOME_INSUFFICIENT_FOR_AMOUNT = "INCOME_INSUFFICIENT_FOR_AMOUNT"
    CREDIT_SCORE_MEETS_MINIMUM = "CREDIT_SCORE_MEETS_MINIMUM"
    INCOME_SUFFICIENT_FOR_AMOUNT = "INCOME_SUFFICIENT_FOR_AMOUNT"
    OFFER_LIMITED_TO_POLICY_MAXIMUM = "OFFER_LIMITED_TO_POLICY_MAXIMUM"
    REDUCED_OFFER_FOR_REVIEW = "REDUCED_OFFER_FOR_REVIEW"


# Rank: a lower number is more important. Adverse reasons outrank the favourable ones.
RANK: Mapping[ReasonCode, int] = {
    ReasonCode.RECENT_APPLICATION_EXISTS: 0,
    ReasonCode.CREDIT_SCORE_BELOW_MINIMUM: 1,
    ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT: 2,
    ReasonCode.CREDIT_SCORE_MEETS_MINIMUM: 3,
    ReasonCode.INCOME_SUFFICIENT_FOR_AMOUNT: 4,
    ReasonCode.OFFER_LIMITED_TO_POLICY_MAXIMUM: 5,
    ReasonCode.REDUCED_OFFER_FOR_REVIEW: 6,
}

TEMPLATES: Mapping[ReasonCode, str] = {
    ReasonCode.RECENT_APPLICATION_EXISTS: (
        "An application with this PAN was submitted through another channel in the last 24 hours."
    ),
    ReasonCode.CREDIT_SCORE_BELOW_MINIMUM: (
        "Credit score {credit_score} is below the minimum of {min_credit_score}."
    ),
    ReasonCode.INCOME_INSUFFICIENT_FOR_AMOUNT: (
        "Monthly income {monthly_income} does not exceed the requested {requested_amount} "
        "spread over {term_months} months; a person must review it."
    ),
    ReasonCode.CREDIT_SCORE_MEETS_MINIMUM: (
        "Credit score {credit_score} meets the minimum of {min_credit_score}."
    ),
    ReasonCode.INCOME_SUFFICIENT_FOR_AMOUNT: (
        "Monthly income {monthly_income} exceeds the requested {requested_amount} spread over "
        "{term_months} months."
    ),
    ReasonCode.OFFER_LIMITED_TO_POLICY_MAXIMUM: (
        "The offer is limited to the policy's maximum of {max_offer_amount}."
    ),
    ReasonCode.REDUCED_OFFER_FOR_REVIEW: (
        "A reduced offer of {offer_amount}, which the income supports, is available while the "
        "application is reviewed."
    ),
}


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    text: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code.value, "text": self.text}


def reason(code: ReasonCode, **figures: object) -> Reason:
    return Reason(code, TEMPLATES[code].format(**figures))


def ranked(reasons: Iterable[Reason]) -> tuple[Reason, ...]:
    """The most important first, at most four, one per code."""
    unique = {r.code: r for r in reasons}
    ordered = sorted(unique.values(), key=lambda r: RANK[r.code])[:MAX_REASONS]
    if not ordered:
        raise ValueError("a decision needs at least one reason")
    return tuple(ordered)


def summary(reasons: Iterable[Reason]) -> str:
    """`decision_reason`, the older free-text field: the reasons' texts in rank order."""
    return " ".join(r.text for r in reasons)
