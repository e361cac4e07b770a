"""decision-service settings (docs/configuration.md): the consumer's, plus the policy.

The policy is `DECISION_POLICY` (the LoanPipeline's `decisionPolicy` as JSON, which the
operator writes with its version in `DECISION_POLICY_VERSION`). Without it the policy is the
default document with `DECISION_MIN_CREDIT_SCORE` and `DECISION_TERM_MONTHS`, as before
policies had versions. A version that does not match the document, or a score or term that
contradicts it, stops the service at start: it must never decide under a policy it cannot name.

`DECISION_CHALLENGER_POLICY` (with `DECISION_CHALLENGER_POLICY_VERSION`) names a shadow policy:
every application is also decided under it and the outcome recorded, never applied. Empty
means none (the operator writes it empty when the pipeline names no challenger).
"""

from __future__ import annotations

from pydantic import Field, ValidationError, model_validator

from decision_service.policy import DecisionPolicy
from prequal.consumer_process import ConsumerSettings


class DecisionSettings(ConsumerSettings):
    metrics_port: int = 9103
    consumer_group: str = "decision-service"
    decision_min_credit_score: int = Field(default=650, ge=300, le=900)
    decision_term_months: int = Field(default=48, ge=1, le=600)
    decision_policy: str | None = None
    decision_policy_version: str | None = None
    decision_challenger_policy: str | None = None
    decision_challenger_policy_version: str | None = None
    # Re-reads of the application after a lost optimistic-lock race, within one attempt.
    decision_version_retries: int = Field(default=5, ge=1, le=50)

    @model_validator(mode="after")
    def _policy_is_consistent(self) -> DecisionSettings:
        try:
            policy = self.policy()
        except (ValidationError, ValueError) as exc:
            raise ValueError(f"DECISION_POLICY is not a valid policy document: {exc}") from None
        if self.decision_policy is not None:
            for setting, value in (
                ("decision_min_credit_score", policy.min_credit_score),
                ("decision_term_months", policy.term_months),
            ):
                if setting in self.model_fields_set and getattr(self, setting) != value:
                    raise ValueError(
                        f"{setting.upper()} contradicts DECISION_POLICY; set it in the policy "
                        "document only"
                    )
        _check_version("DECISION_POLICY_VERSION", self.decision_policy_version, policy)
        try:
            challenger = self.challenger()
        except (ValidationError, ValueError) as exc:
            raise ValueError(
                f"DECISION_CHALLENGER_POLICY is not a valid policy document: {exc}"
            ) from None
        if challenger is not None:
            _check_version(
                "DECISION_CHALLENGER_POLICY_VERSION",
                self.decision_challenger_policy_version,
                challenger,
            )
        return self

    def challenger(self) -> DecisionPolicy | None:
        if not self.decision_challenger_policy:
            return None
        return DecisionPolicy.from_json(self.decision_challenger_policy)

    def policy(self) -> DecisionPolicy:
        if self.decision_policy is not None:
            return DecisionPolicy.from_json(self.decision_policy)
        return DecisionPolicy(
            min_credit_score=self.decision_min_credit_score,
            term_months=self.decision_term_months,
        )


def _check_version(setting: str, given: str | None, policy: DecisionPolicy) -> None:
    if given and given != policy.version:
        raise ValueError(
            f"{setting} {given} does not match the document's content hash {policy.version}; "
            "the operator and this service canonicalise the policy differently "
            "(see docs/decisions.md)"
        )
