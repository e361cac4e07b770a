"""Converging one LoanPipeline's world to its spec, and scaling its consumers against lag.

Called only from the pipeline's worker thread, so the in-memory `PipelineState` has one writer
and the status written from it never races with itself. Each step records its outcome as a
condition instead of raising: an unreachable Kafka is a state to report and retry, not a crash.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loan_operator import conditions as cond
from loan_operator.decision_policy import canonical_json, policy_version
from loan_operator.kafka_admin import KafkaAdmin, KafkaRequestFailed, KafkaUnreachable, TopicMissing
from loan_operator.kafka_principals import KafkaPrincipals
from loan_operator.key_secrets import KeySecrets, keys_message
from loan_operator.kube import KIND, Kube, PipelineRef, now_iso
from loan_operator.metrics import Metrics
from loan_operator.ownership import Refusal, config_map_claim, deployment_claim
from loan_operator.scaling import (
    Recommendation,
    desired_replicas,
    prune,
    stabilized_replicas,
    total_lag,
)
from loan_operator.spec import (
    APPLICATIONS_DECIDED,
    APPLICATIONS_SUBMITTED,
    CREDIT_REPORTS,
    ConsumerSpec,
    PipelineSpec,
)
from loan_operator.topics import desired_topics, plan_topics
from prequal.sealing import DEFAULT_KEM, KemName

log = logging.getLogger("loan_operator")

DATABASE_URL_KEY = "url"


def config_map_name(pipeline: str) -> str:
    return f"{pipeline}-pipeline"


def config_map_data(spec: PipelineSpec) -> dict[str, str]:
    """What the services read (docs/configuration.md), from the spec."""
    challenger = spec.challenger_policy
    return {
        "KAFKA_BOOTSTRAP_SERVERS": spec.kafka.bootstrap_servers,
        "TOPIC_APPLICATIONS_SUBMITTED": spec.kafka.topic_name(APPLICATIONS_SUBMITTED),
        "TOPIC_CREDIT_REPORTS": spec.kafka.topic_name(CREDIT_REPORTS),
        "TOPIC_APPLICATIONS_DECIDED": spec.kafka.topic_name(APPLICATIONS_DECIDED),
        "DECISION_MIN_CREDIT_SCORE": str(spec.min_credit_score),
        "DECISION_TERM_MONTHS": str(spec.term_months),
        "DECISION_POLICY": canonical_json(spec.decision_policy),
        "DECISION_POLICY_VERSION": policy_version(spec.decision_policy),
        # Always written, empty without a challenger, so removing one from the spec removes it.
        "DECISION_CHALLENGER_POLICY": "" if challenger is None else canonical_json(challenger),
        "DECISION_CHALLENGER_POLICY_VERSION": ""
        if challenger is None
        else policy_version(challenger),
    }


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


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        kafka: Callable[[str], KafkaAdmin],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        key_distribution_seconds: float = 180.0,
        sealing_kem: KemName = DEFAULT_KEM,
        manage_principals: bool = False,
    ) -> None:
        self.kube = kube
        self.principals = KafkaPrincipals(kube, self._changed, enabled=manage_principals)
        self.keys = KeySecrets(
            kube,
            self._changed,
            key_distribution_seconds=key_distribution_seconds,
            sealing_kem=sealing_kem,
        )
        self.kafka = kafka
        self.metrics = metrics
        self.clock = clock

    # --- helpers -----------------------------------------------------------------------------
    def _set(
        self,
        state: PipelineState,
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
                self._event(state.ref, reason, message, warning=True)

    def _event(self, ref: PipelineRef, reason: str, message: str, *, warning: bool = False) -> None:
        try:
            self.kube.post_event(ref, reason, message, warning=warning)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort, never a failure
            log.debug("event %s for %s/%s not posted: %s", reason, ref.namespace, ref.name, exc)

    def _changed(self, ref: PipelineRef, reason: str, message: str) -> None:
        log.info("%s/%s %s: %s", ref.namespace, ref.name, reason, message)
        self._event(ref, reason, message)

    # --- convergence ---------------------------------------------------------------------------
    def converge(self, state: PipelineState, spec: PipelineSpec, generation: int) -> bool:
        """One pass over topics, Secrets and the ConfigMap; True when everything is in place."""
        topics_ok = self._converge_topics(state, spec, generation)
        secrets_ok = self._converge_secrets(state, spec, generation)
        access_ok = self._converge_access(state, spec, generation)
        state.observed_generation = generation
        ok = topics_ok and secrets_ok and access_ok
        result = "ok" if ok else "degraded"
        self.metrics.reconciles.labels(state.ref.namespace, state.ref.name, result).inc()
        return ok

    def _converge_topics(self, state: PipelineState, spec: PipelineSpec, generation: int) -> bool:
        ref = state.ref
        desired = desired_topics(spec.kafka)
        try:
            admin = self.kafka(spec.kafka.bootstrap_servers)
            observed = admin.observe_topics(t.name for t in desired)
            plan = plan_topics(desired, observed)
            for topic in plan.create:
                admin.create_topic(topic)
                self._changed(
                    ref,
                    "TopicCreated",
                    f"created topic {topic.name} with {topic.partitions} partitions",
                )
            for name, total in plan.raise_partitions.items():
                admin.raise_partitions(name, total)
                self._changed(
                    ref,
                    "PartitionsIncreased",
                    f"topic {name}: {observed[name].partitions} → {total} partitions",
                )
            for name, values in plan.alter_config.items():
                admin.alter_config(name, values)
                drift = ", ".join(
                    f"{k}: {observed[name].config.get(k)} → {v}" for k, v in values.items()
                )
                self._changed(ref, "TopicConfigUpdated", f"topic {name}: {drift}")
        except KafkaUnreachable as exc:
            self._set(
                state,
                cond.TOPICS_READY,
                generation,
                ok=False,
                reason="KafkaUnreachable",
                message=f"{spec.kafka.bootstrap_servers}: {exc}",
            )
            state.topics = [{"name": t.name, "partitions": 0, "ready": False} for t in desired]
            return False
        except KafkaRequestFailed as exc:
            self._set(
                state,
                cond.TOPICS_READY,
                generation,
                ok=False,
                reason="TopicError",
                message=str(exc),
            )
            return False

        state.topics = [
            {
                "name": t.name,
                "partitions": observed[t.name].partitions
                if t.name in plan.refused
                else t.partitions,
                "ready": t.name not in plan.refused,
            }
            for t in desired
        ]
        if plan.refused:
            self._set(
                state,
                cond.TOPICS_READY,
                generation,
                ok=False,
                reason="NotSupported",
                message="; ".join(plan.refused.values()),
            )
            return False
        self._set(
            state,
            cond.TOPICS_READY,
            generation,
            ok=True,
            reason="TopicsReconciled",
            message=f"{len(desired)} topics in place",
        )
        return True

    def _converge_access(self, state: PipelineState, spec: PipelineSpec, generation: int) -> bool:
        admin = self.kafka(spec.kafka.bootstrap_servers)
        ok, reason, message = self.principals.converge(state.ref, spec, admin)
        self._set(state, cond.KAFKA_ACCESS_READY, generation, ok=ok, reason=reason, message=message)
        return ok

    def _converge_secrets(self, state: PipelineState, spec: PipelineSpec, generation: int) -> bool:
        ref = state.ref
        problem = self.keys.ensure(state, spec)
        if problem is None:
            problem = self.keys.ensure_index(state, spec)
        if problem is None:
            problem = self._check_database(ref, spec)
        name = config_map_name(ref.name)
        changed = self.kube.apply_config_map(
            ref.namespace,
            name,
            config_map_data(spec),
            ref,
            lambda meta: config_map_claim(ref.name, ref.uid, KIND, name, meta),
        )
        if isinstance(changed, Refusal):
            problem = problem or (changed.reason, changed.message)
        elif changed:
            self._changed(
                ref,
                f"ConfigMap{changed.capitalize()}",
                f"ConfigMap {config_map_name(ref.name)} {changed}",
            )
        if problem:
            reason, message = problem
            self._set(
                state, cond.SECRETS_READY, generation, ok=False, reason=reason, message=message
            )
            return False
        self._set(
            state,
            cond.SECRETS_READY,
            generation,
            ok=True,
            reason="SecretsReconciled",
            message="; ".join(filter(None, (keys_message(state), "database Secret present"))),
        )
        return True

    def _check_database(self, ref: PipelineRef, spec: PipelineSpec) -> tuple[str, str] | None:
        secret = self.kube.read_secret(ref.namespace, spec.database_secret_name)
        if secret is None:
            return ("DatabaseSecretMissing", f"Secret {spec.database_secret_name} does not exist")
        if not secret.data.get(DATABASE_URL_KEY):
            return (
                "DatabaseSecretInvalid",
                f"Secret {spec.database_secret_name} has no key {DATABASE_URL_KEY!r}",
            )
        return None

    # --- scaling -------------------------------------------------------------------------------
    def scale(self, state: PipelineState, spec: PipelineSpec, consumer: ConsumerSpec) -> None:
        """Observes the consumer's lag and sets its Deployment's replicas."""
        ref = state.ref
        labels = (ref.namespace, ref.name, consumer.name)
        current_state = state.consumers.setdefault(consumer.name, ConsumerState())
        topic = spec.kafka.topic_name(consumer.topic)
        try:
            offsets = self.kafka(spec.kafka.bootstrap_servers).partition_offsets(
                topic, consumer.consumer_group
            )
        except KafkaUnreachable as exc:
            current_state.error = ("KafkaUnreachable", f"{consumer.name}: {exc}")
            return
        except TopicMissing:
            current_state.error = ("TopicMissing", f"{consumer.name}: topic {topic} does not exist")
            return
        except KafkaRequestFailed as exc:
            current_state.error = ("LagUnavailable", f"{consumer.name}: {exc}")
            return
        claim = deployment_claim(
            ref.name, consumer.deployment, self.kube.list_pipelines(ref.namespace)
        )
        if isinstance(claim, Refusal):
            current_state.error = (claim.reason, f"{consumer.name}: {claim.message}")
            return
        current = self.kube.read_replicas(ref.namespace, consumer.deployment)
        if current is None:
            current_state.error = (
                "DeploymentMissing",
                f"{consumer.name}: Deployment {consumer.deployment} does not exist",
            )
            return
        now = self.clock()
        window = consumer.scale_down_stabilization_seconds
        if not current_state.history:
            # After a (re)start, what runs now counts as a recent recommendation: a restart
            # never sheds consumers before a full window has passed.
            current_state.history.append(Recommendation(now, current))
        lag = total_lag(offsets, consumer.offset_reset_policy)
        raw = desired_replicas(lag, len(offsets), consumer)
        target = stabilized_replicas(current, raw, current_state.history, now, window)
        current_state.history = [
            *prune(current_state.history, now, window),
            Recommendation(now, raw),
        ]
        if target != current:
            self.kube.set_replicas(ref.namespace, consumer.deployment, target)
            current_state.last_scale_time = now_iso()
            self.metrics.scalings.labels(*labels).inc()
            self._changed(
                ref,
                "Scaled",
                f"{consumer.deployment}: {current} → {target} replicas "
                f"(lag {lag}, threshold {consumer.lag_threshold})",
            )
        current_state.lag, current_state.replicas, current_state.desired = lag, target, target
        current_state.error = None
        self.metrics.lag.labels(*labels).set(lag)
        self.metrics.desired.labels(*labels).set(target)
        self.metrics.replicas.labels(*labels).set(target)

    def summarize_scaling(self, state: PipelineState, spec: PipelineSpec, generation: int) -> None:
        for name in set(state.consumers) - {c.name for c in spec.consumers}:
            del state.consumers[name]
            self.metrics.forget_consumer(state.ref.namespace, state.ref.name, name)
        if not spec.consumers:
            self._set(
                state,
                cond.SCALING_ACTIVE,
                generation,
                ok=True,
                reason="NoConsumers",
                message="the spec lists no consumers",
            )
            return
        errors = [s.error for s in state.consumers.values() if s.error]
        if errors:
            self._set(
                state,
                cond.SCALING_ACTIVE,
                generation,
                ok=False,
                reason=errors[0][0],
                message="; ".join(e[1] for e in errors),
            )
            return
        observed = [c.name for c in spec.consumers if c.name in state.consumers]
        self._set(
            state,
            cond.SCALING_ACTIVE,
            generation,
            ok=True,
            reason="LagObserved",
            message=f"scaling {', '.join(observed)} against lag",
        )

    # --- deletion ------------------------------------------------------------------------------
    def remove(self, ref: PipelineRef, spec: PipelineSpec, attempts: int = 3) -> None:
        """After the LoanPipeline is gone: delete its topics if its policy says so.

        Bounded: with Kafka unreachable it gives up after `attempts` tries and says so in a
        Warning Event — the resource is already gone, nothing waits on this.
        """
        for consumer in spec.consumers:
            self.metrics.forget_consumer(ref.namespace, ref.name, consumer.name)
        if spec.deletion_policy != "Delete":
            log.info(
                "%s/%s deleted; topics retained (deletionPolicy Retain)", ref.namespace, ref.name
            )
            return
        names = [t.name for t in desired_topics(spec.kafka)]
        for attempt in range(1, attempts + 1):
            try:
                deleted = self.kafka(spec.kafka.bootstrap_servers).delete_topics(names)
            except (KafkaUnreachable, KafkaRequestFailed) as exc:
                log.warning(
                    "%s/%s: deleting topics failed (attempt %d of %d): %s",
                    ref.namespace,
                    ref.name,
                    attempt,
                    attempts,
                    exc,
                )
                time.sleep(min(2**attempt, 10))
                continue
            self._changed(ref, "TopicsDeleted", f"deleted topics {', '.join(deleted) or '(none)'}")
            return
        self._event(
            ref,
            "TopicDeletionFailed",
            f"gave up deleting topics {', '.join(names)}: Kafka "
            f"{spec.kafka.bootstrap_servers} unreachable; delete them by hand",
            warning=True,
        )
