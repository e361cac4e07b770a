"""Backtest: what a candidate policy would have decided for applications already decided.

Pure: it takes the stored figures and outcomes, and counts, per score band of the candidate,
how many outcomes would change and how (`prequalctl policy backtest` reads the rows and prints
the result). The recent-application flag is taken from the stored reasons, the only place it
is recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from decision_service.policy import DecisionPolicy
from decision_service.reasons import ReasonCode
from decision_service.rules import Applicant, decide

NO_BAND = "(no band)"


@dataclass(frozen=True)
class StoredOutcome:
    credit_score: int
    monthly_income: Decimal
    requested_amount: Decimal
    loan_type: str
    status: str
    reason_codes: tuple[str, ...] = ()


@dataclass
class BandResult:
    band: str
    min_score: int | None
    applications: int = 0
    changed: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {
            "band": self.band,
            "min_score": self.min_score,
            "applications": self.applications,
            "changed": self.changed,
            "transitions": {f"{a}->{b}": n for (a, b), n in sorted(self.transitions.items())},
        }


@dataclass
class BacktestReport:
    policy_version: str
    bands: list[BandResult]

    @property
    def applications(self) -> int:
        return sum(b.applications for b in self.bands)

    @property
    def changed(self) -> int:
        return sum(b.changed for b in self.bands)


def backtest(
    outcomes: Iterable[StoredOutcome], candidate: DecisionPolicy, now: datetime
) -> BacktestReport:
    ordered = sorted(candidate.score_bands, key=lambda b: b.min_score, reverse=True)
    bands = {b.name: BandResult(b.name, b.min_score) for b in ordered}
    below = BandResult(NO_BAND, None)
    for stored in outcomes:
        applicant = Applicant(
            credit_score=stored.credit_score,
            monthly_income=stored.monthly_income,
            requested_amount=stored.requested_amount,
            loan_type=stored.loan_type,
            recent_application_elsewhere=ReasonCode.RECENT_APPLICATION_EXISTS
            in stored.reason_codes,
        )
        would = decide(applicant, candidate, now).status.value
        band = candidate.band_for(stored.credit_score)
        result = below if band is None else bands[band.name]
        result.applications += 1
        if would != stored.status:
            result.changed += 1
            result.transitions[(stored.status, would)] += 1
    found = list(bands.values())
    if below.applications:
        found.append(below)
    return BacktestReport(candidate.version, found)
