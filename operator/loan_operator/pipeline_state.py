"""What the operator knows about one LoanPipeline between passes, and the status rendered from it.

Owned by the pipeline's worker thread (one writer): the reconciler and the scaler record their
outcomes here as conditions and figures, and `as_status` renders the status subresource. It
resumes from the stored status, so condition transition times survive operator restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loan_operator import conditions as cond
from loan_operator.kube import PipelineRef, now_iso
from loan_operator.scaling import Recommendation


@dataclass
class ConsumerState:
    lag: int = 0
    replicas: int = 0
    desired: int = 0
    last_scale_time: str | None = None
    history: list[Recommendation] = field(default_factory=list)
    error: tuple[str, str] | None = None  # (reason, message) of the last failed observation

    def as_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": name,
            "lag": self.lag,
            "replicas": self.replicas,
            "desiredReplicas": self.desired,
        }
        if self.last_scale_time:
            status["lastScaleTime"] = self.last_scale_time
        return status


@dataclass
class PipelineState:
    """What the worker knows about one pipeline; the status subresource is rendered from it."""

    ref: PipelineRef
    conditions: dict[str, cond.Condition] = field(default_factory=dict)
    topics: list[dict[str, Any]] = field(default_factory=list)
    consumers: dict[str, ConsumerState] = field(default_factory=dict)
    observed_generation: int | None = None
    # {phase: Distributing | Active, keyId, since}: where the key rotation stands.
    key_rotation: dict[str, str] | None = None
    # The same for the blind-index keys, with the index Secret's name (secretName).
    index_key_rotation: dict[str, str] | None = None
    # The same for the webhook dispatcher's key pair, with its Secret's name.
    webhook_key_rotation: dict[str, str] | None = None

    @classmethod
    def resume(cls, ref: PipelineRef, status: Mapping[str, Any]) -> PipelineState:
        """Picks up from a previous operator's status, so transition times survive restarts."""
        state = cls(ref, conditions=cond.from_list(status.get("conditions")))
        if status.get("keyRotation"):
            state.key_rotation = dict(status["keyRotation"])
        if status.get("indexKeyRotation"):
            state.index_key_rotation = dict(status["indexKeyRotation"])
        if status.get("webhookKeyRotation"):
            state.webhook_key_rotation = dict(status["webhookKeyRotation"])
        for item in status.get("consumers") or ():
            state.consumers[item["name"]] = ConsumerState(
                lag=int(item.get("lag", 0)),
                replicas=int(item.get("replicas", 0)),
                desired=int(item.get("desiredReplicas", 0)),
                last_scale_time=item.get("lastScaleTime"),
            )
        return state

    def as_status(self, generation: int) -> dict[str, Any]:
        conditions = cond.with_ready(self.conditions, generation=generation, now=now_iso())
        self.conditions = conditions
        ready_topics = sum(1 for t in self.topics if t["ready"])
        consumers = [c.as_status(n) for n, c in sorted(self.consumers.items())]
        extra: dict[str, Any] = {"keyRotation": self.key_rotation} if self.key_rotation else {}
        if self.index_key_rotation:
            extra["indexKeyRotation"] = self.index_key_rotation
        if self.webhook_key_rotation:
            extra["webhookKeyRotation"] = self.webhook_key_rotation
        return {
            **extra,
            "observedGeneration": self.observed_generation,
            "conditions": cond.as_list(conditions),
            "topics": self.topics,
            "topicsSummary": f"{ready_topics}/{len(self.topics)}",
            "consumers": consumers,
            "totalLag": sum(c["lag"] for c in consumers),
            "totalReplicas": sum(c["replicas"] for c in consumers),
        }
