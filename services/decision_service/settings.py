"""decision-service settings (docs/configuration.md): the consumer's, plus the policy."""

from __future__ import annotations

from pydantic import Field

from decision_service.rules import DecisionPolicy
from prequal.consumer_process import ConsumerSettings


class DecisionSettings(ConsumerSettings):
    metrics_port: int = 9103
    consumer_group: str = "decision-service"
    decision_min_credit_score: int = Field(default=650, ge=300, le=900)
    decision_term_months: int = Field(default=48, ge=1, le=600)
    # Re-reads of the application after a lost optimistic-lock race, within one attempt.
    decision_version_retries: int = Field(default=5, ge=1, le=50)

    def policy(self) -> DecisionPolicy:
        return DecisionPolicy(self.decision_min_credit_score, self.decision_term_months)
