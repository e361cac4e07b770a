"""Status conditions in the standard Kubernetes shape (metav1.Condition).

`lastTransitionTime` moves only when `status` changes, so `kubectl wait` and dashboards can
tell how long a pipeline has been (un)ready; reason and message may change under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TOPICS_READY = "TopicsReady"
SECRETS_READY = "SecretsReady"
# The pipeline's Kafka principals, their credential Secrets and ACLs (kafka_principals).
KAFKA_ACCESS_READY = "KafkaAccessReady"
SCALING_ACTIVE = "ScalingActive"
READY = "Ready"
ORDER = (TOPICS_READY, SECRETS_READY, KAFKA_ACCESS_READY, SCALING_ACTIVE, READY)

Condition = dict[str, Any]


def set_condition(
    conditions: Mapping[str, Condition],
    type_: str,
    *,
    ok: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> dict[str, Condition]:
    """A copy of `conditions` (keyed by type) with one condition set."""
    status = "True" if ok else "False"
    previous = conditions.get(type_)
    since = previous["lastTransitionTime"] if previous and previous["status"] == status else now
    updated = dict(conditions)
    updated[type_] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
    return updated


def with_ready(
    conditions: Mapping[str, Condition], *, generation: int, now: str
) -> dict[str, Condition]:
    """Ready is True when every other condition is True; else it carries the first failure."""
    parts = [conditions[t] for t in ORDER[:-1] if t in conditions]
    failing = [c for c in parts if c["status"] != "True"]
    if len(parts) < len(ORDER) - 1:
        return set_condition(
            conditions,
            READY,
            ok=False,
            reason="Reconciling",
            message="not every part has been reconciled yet",
            generation=generation,
            now=now,
        )
    if failing:
        first = failing[0]
        return set_condition(
            conditions,
            READY,
            ok=False,
            reason=first["reason"],
            message=f"{first['type']}: {first['message']}",
            generation=generation,
            now=now,
        )
    return set_condition(
        conditions, READY, ok=True, reason="Reconciled", message="", generation=generation, now=now
    )


def as_list(conditions: Mapping[str, Condition]) -> list[Condition]:
    return [conditions[t] for t in ORDER if t in conditions]


def from_list(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Condition]:
    return {str(c["type"]): dict(c) for c in items or () if "type" in c}
