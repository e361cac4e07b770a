"""The decision policy: a versioned document (docs/decisions.md, "The policy document").

The LoanPipeline's `decisionPolicy` is this document (camelCase keys, money and rates as decimal
strings so nothing passes through a float). Its version is a content hash: the first 16 hex
digits of the SHA-256 of its canonical JSON (every field present, keys sorted, no spaces). The
same policy always has the same version, a changed one always another; the text is stored in
PostgreSQL under the version, so any past decision can be explained from the text that made it.

The defaults reproduce the rules before policies had versions: minimum score 650, a 48-month
term, no offer for manual review.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

VERSION_HEX_DIGITS = 16

# A rate is a fraction with at most four decimals ("0.1450" is 14.50 % a year).
Rate = Annotated[Decimal, Field(ge=0, lt=1, max_digits=5, decimal_places=4)]
Money = Annotated[Decimal, Field(ge=0, le=10**12, max_digits=14, decimal_places=2)]
Share = Annotated[Decimal, Field(gt=0, le=1, max_digits=5, decimal_places=4)]


class _Document(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ScoreBand(_Document):
    """Scores from `min_score` up to the next band's minimum are priced at `annual_rate`."""

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,31}$")
    min_score: int = Field(ge=300, le=900)
    annual_rate: Rate


class ProcessingFee(_Document):
    """`rate` × the offered amount, rounded to the paisa, kept within `minimum`..`maximum`."""

    rate: Rate = Decimal("0.0200")
    minimum: Money = Decimal("1000.00")
    maximum: Money = Decimal("25000.00")

    @model_validator(mode="after")
    def _ordered(self) -> ProcessingFee:
        if self.minimum > self.maximum:
            raise ValueError("processingFee.minimum must not exceed processingFee.maximum")
        return self


class Limits(_Document):
    max_offer_amount: Annotated[Money, Field(gt=0)] = Decimal("10000000.00")


class ManualReviewOffer(_Document):
    """Whether a MANUAL_REVIEW decision carries a reduced offer: `share_of_capacity` of
    monthly income × term, rounded down to a multiple of 1,000."""

    enabled: bool = False
    share_of_capacity: Share = Decimal("0.5000")


DEFAULT_BANDS = (
    ScoreBand(name="PRIME", min_score=750, annual_rate=Decimal("0.1200")),
    ScoreBand(name="NEAR_PRIME", min_score=700, annual_rate=Decimal("0.1450")),
    ScoreBand(name="STANDARD", min_score=300, annual_rate=Decimal("0.1750")),
)


class DecisionPolicy(_Document):
    min_credit_score: int = Field(default=650, ge=300, le=900)
    term_months: int = Field(default=48, ge=1, le=600)
    score_bands: tuple[ScoreBand, ...] = Field(default=DEFAULT_BANDS, min_length=1, max_length=10)
    processing_fee: ProcessingFee = ProcessingFee()
    limits: Limits = Limits()
    offer_validity_days: int = Field(default=30, ge=1, le=90)
    manual_review_offer: ManualReviewOffer = ManualReviewOffer()

    @model_validator(mode="after")
    def _bands_cover_approvals(self) -> DecisionPolicy:
        names = [b.name for b in self.score_bands]
        floors = [b.min_score for b in self.score_bands]
        if len(set(names)) != len(names) or len(set(floors)) != len(floors):
            raise ValueError("scoreBands need distinct names and distinct minScores")
        if min(floors) > self.min_credit_score:
            raise ValueError(
                f"the lowest scoreBands minScore ({min(floors)}) must not exceed minCreditScore "
                f"({self.min_credit_score}): every approvable score needs a price"
            )
        return self

    @classmethod
    def from_json(cls, text: str) -> DecisionPolicy:
        """The policy in the pipeline ConfigMap's `DECISION_POLICY`; ValueError says what is
        wrong with it."""
        return cls.model_validate(json.loads(text))

    def band_for(self, credit_score: int) -> ScoreBand | None:
        """The highest band whose minimum the score reaches."""
        reached = [b for b in self.score_bands if credit_score >= b.min_score]
        return max(reached, key=lambda b: b.min_score, default=None)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @cached_property
    def text(self) -> str:
        """The canonical JSON: what is hashed and what is stored."""
        return canonical_json(self.document())

    @cached_property
    def version(self) -> str:
        return version_of(self.text)


def canonical_json(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:VERSION_HEX_DIGITS]
