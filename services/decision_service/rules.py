"""The decision: a pure function of the credit score, the application and the policy."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class FinalStatus(StrEnum):
    PRE_APPROVED = "PRE_APPROVED"
    REJECTED = "REJECTED"
    MANUAL_REVIEW = "MANUAL_REVIEW"


@dataclass(frozen=True)
class DecisionPolicy:
    """The LoanPipeline's `decisionPolicy` (DECISION_MIN_CREDIT_SCORE, DECISION_TERM_MONTHS)."""

    min_credit_score: int = 650
    term_months: int = 48

    def __post_init__(self) -> None:
        if self.term_months < 1:
            raise ValueError(f"term_months must be at least 1, got {self.term_months}")


@dataclass(frozen=True)
class Decision:
    status: FinalStatus
    reason: str
    max_approved_amount: Decimal | None = None


def decide(
    credit_score: int,
    monthly_income: Decimal,
    requested_amount: Decimal,
    policy: DecisionPolicy,
) -> Decision:
    if credit_score < policy.min_credit_score:
        return Decision(
            FinalStatus.REJECTED,
            f"Credit score {credit_score} is below the minimum of {policy.min_credit_score}.",
        )
    # income > amount / term, compared as income × term > amount: exact in Decimal, no rounding.
    installment_capacity = monthly_income * policy.term_months
    if installment_capacity > requested_amount:
        return Decision(
            FinalStatus.PRE_APPROVED,
            f"Credit score {credit_score} meets the minimum of {policy.min_credit_score} and "
            f"monthly income {monthly_income} exceeds the requested {requested_amount} spread "
            f"over {policy.term_months} months.",
            max_approved_amount=installment_capacity,
        )
    return Decision(
        FinalStatus.MANUAL_REVIEW,
        f"Credit score {credit_score} meets the minimum of {policy.min_credit_score}, but monthly "
        f"income {monthly_income} does not exceed the requested {requested_amount} spread over "
        f"{policy.term_months} months; a person must review it.",
    )
