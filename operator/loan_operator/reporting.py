"""How the operator tells people what it did: conditions, Events, log lines, error counters.

A condition that turns False is one Warning Event and one log line per transition, never per
retry; every change the operator makes is one Normal Event and one log line. An Event is best
effort: failing to post one never fails the work it describes.
"""

from __future__ import annotations

import logging
from typing import Protocol

from loan_operator import conditions as cond
from loan_operator.kube import Kube, PipelineRef, now_iso
from loan_operator.metrics import Metrics

log = logging.getLogger("loan_operator")


class HasConditions(Protocol):
    ref: PipelineRef
    conditions: dict[str, cond.Condition]


class Reporter:
    def __init__(self, kube: Kube, metrics: Metrics) -> None:
        self.kube = kube
        self.metrics = metrics

    def condition(
        self,
        state: HasConditions,
        type_: str,
        generation: int,
        *,
        ok: bool,
        reason: str,
        message: str = "",
    ) -> None:
        previous = state.conditions.get(type_)
        state.conditions = cond.set_condition(
            state.conditions,
            type_,
            ok=ok,
            reason=reason,
            message=message,
            generation=generation,
            now=now_iso(),
        )
        changed = previous is None or (previous["status"], previous["reason"]) != (
            "True" if ok else "False",
            reason,
        )
        if not ok:
            self.metrics.errors.labels(state.ref.namespace, state.ref.name, reason).inc()
            if changed:  # a warning Event per transition, not per retry
                log.warning("%s/%s %s: %s", state.ref.namespace, state.ref.name, reason, message)
                self.event(state.ref, reason, message, warning=True)

    def event(self, ref: PipelineRef, reason: str, message: str, *, warning: bool = False) -> None:
        try:
            self.kube.post_event(ref, reason, message, warning=warning)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort, never a failure
            log.debug("event %s for %s/%s not posted: %s", reason, ref.namespace, ref.name, exc)

    def changed(self, ref: PipelineRef, reason: str, message: str) -> None:
        log.info("%s/%s %s: %s", ref.namespace, ref.name, reason, message)
        self.event(ref, reason, message)
