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
from datetime import UTC, datetime
from typing import Any

from loan_operator import conditions as cond
from loan_operator import keyring
from loan_operator.decision_policy import canonical_json, policy_version
from loan_operator.kafka_admin import KafkaAdmin, KafkaRequestFailed, KafkaUnreachable, TopicMissing
from loan_operator.kube import Conflict, Kube, PipelineRef, now_iso
from loan_operator.metrics import Metrics
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

    @classmethod
    def resume(cls, ref: PipelineRef, status: Mapping[str, Any]) -> PipelineState:
        """Picks up from a previous operator's status, so transition times survive restarts."""
        state = cls(ref, conditions=cond.from_list(status.get("conditions")))
        if status.get("keyRotation"):
            state.key_rotation = dict(status["keyRotation"])
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
        extra = {"keyRotation": self.key_rotation} if self.key_rotation else {}
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
    ) -> None:
        self.key_distribution_seconds = key_distribution_seconds
        self.sealing_kem = sealing_kem
        self.kube = kube
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
        state.observed_generation = generation
        ok = topics_ok and secrets_ok
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

    def _converge_secrets(self, state: PipelineState, spec: PipelineSpec, generation: int) -> bool:
        ref = state.ref
        # The key Secret outlives the pipeline whatever its deletionPolicy: the rows it encrypts
        # stay in PostgreSQL, and without it every stored PAN is unreadable. A Secret an older
        # operator made owned (deletionPolicy Delete) loses that ownerReference here.
        problem = self._ensure_keys(state, spec, owned=False)
        if problem is None:
            problem = self._check_database(ref, spec)
        changed = self.kube.apply_config_map(
            ref.namespace, config_map_name(ref.name), config_map_data(spec), ref
        )
        if changed:
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
            message=_keys_message(state) + "; database Secret present",
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

    def _ensure_keys(
        self, state: PipelineState, spec: PipelineSpec, owned: bool
    ) -> tuple[str, str] | None:
        ref = state.ref
        name = spec.key_secret_name
        wanted = keyring.key_id(spec.key_version)
        secret = self.kube.read_secret(ref.namespace, name)
        if secret is None:
            data = keyring.new_key_data(spec.key_version, self.sealing_kem)
            if self.kube.create_secret(ref.namespace, name, data, ref if owned else None):
                self._changed(ref, "KeySecretCreated", f"generated Secret {name} with key {wanted}")
                state.key_rotation = {"phase": "Active", "keyId": wanted, "since": now_iso()}
                return self._project_api_keys(ref, name, data)
            secret = self.kube.read_secret(ref.namespace, name)  # lost a race: use theirs
            if secret is None:
                return ("KeySecretInvalid", f"Secret {name} vanished while being created")
        try:
            rotation = keyring.rotate(
                secret.data,
                spec.key_version,
                activate=self._distributed(state, wanted),
                kem=self.sealing_kem,
            )
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {name}: {exc}")
        data_changed = rotation.data != secret.data
        owner_changed = (ref.uid in secret.owned_by) != owned
        if data_changed or owner_changed:
            try:
                self.kube.update_secret(
                    ref.namespace,
                    name,
                    data=rotation.data if data_changed else None,
                    owner=ref,
                    owned=owned,
                )
            except Conflict:
                return ("KeySecretConflict", f"Secret {name} changed while being updated; retrying")
            if rotation.added:
                self._changed(
                    ref,
                    "KeyRotated",
                    f"Secret {name}: appended key {rotation.added}; active once every reader has "
                    f"it ({self.key_distribution_seconds:g}s)",
                )
            elif data_changed:
                self._changed(ref, "KeyActivated", f"Secret {name}: active key {rotation.active}")
            if owner_changed:
                self._changed(
                    ref,
                    "KeySecretOwnershipChanged",
                    f"Secret {name} "
                    + ("now goes with" if owned else "now outlives")
                    + " the pipeline",
                )
        self._record_phase(state, wanted, rotation.active)
        return self._project_api_keys(ref, name, rotation.data)

    def _project_api_keys(
        self, ref: PipelineRef, name: str, data: Mapping[str, str]
    ) -> tuple[str, str] | None:
        """The API's Secret: the key Secret without any private key, kept in step with it.

        It follows the key Secret's active key id, which moves only after the distribution
        phase: the API seals with a key only once the credit service can open it.
        """
        api_name = keyring.api_secret_name(name)
        webhook_keys = self._ensure_webhook_keys(ref, name)
        if isinstance(webhook_keys, tuple):
            return webhook_keys
        wanted = keyring.api_data(data) | webhook_keys
        current = self.kube.read_secret(ref.namespace, api_name)
        if current is None:
            if self.kube.create_secret(ref.namespace, api_name, wanted, None):
                self._changed(ref, "ApiKeySecretCreated", f"wrote Secret {api_name} (public keys)")
            return None
        if current.data != wanted:
            try:
                self.kube.update_secret(
                    ref.namespace, api_name, data=wanted, owner=ref, owned=False
                )
            except Conflict:
                return ("KeySecretConflict", f"Secret {api_name} changed while being updated")
            self._changed(ref, "ApiKeySecretUpdated", f"Secret {api_name}: public keys updated")
        return None

    def _ensure_webhook_keys(self, ref: PipelineRef, name: str) -> dict[str, str] | tuple[str, str]:
        """The dispatcher's key Secret, generated when absent and never changed; its public
        part for the API's Secret, or why there is none."""
        webhook_name = keyring.webhook_secret_name(name)
        secret = self.kube.read_secret(ref.namespace, webhook_name)
        if secret is None:
            data = keyring.new_webhook_key_data(self.sealing_kem)
            if self.kube.create_secret(ref.namespace, webhook_name, data, None):
                self._changed(
                    ref, "WebhookKeySecretCreated", f"generated Secret {webhook_name} (key v1)"
                )
                return keyring.webhook_api_data(data)
            secret = self.kube.read_secret(ref.namespace, webhook_name)  # lost a race
            if secret is None:
                return ("KeySecretInvalid", f"Secret {webhook_name} vanished while being created")
        try:
            return keyring.webhook_api_data(secret.data)
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {webhook_name}: {exc}")

    def _distributed(self, state: PipelineState, wanted: str) -> bool:
        """True once `wanted` has been in the Secret, inactive, for the distribution period."""
        phase = state.key_rotation or {}
        if phase.get("phase") != "Distributing" or phase.get("keyId") != wanted:
            return False
        since = datetime.strptime(phase["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (datetime.now(UTC) - since).total_seconds() >= self.key_distribution_seconds

    @staticmethod
    def _record_phase(state: PipelineState, wanted: str, active: str) -> None:
        phase = "Active" if active == wanted else "Distributing"
        current = state.key_rotation or {}
        if current.get("phase") != phase or current.get("keyId") != wanted:
            state.key_rotation = {"phase": phase, "keyId": wanted, "since": now_iso()}

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


def _keys_message(state: PipelineState) -> str:
    phase = state.key_rotation or {}
    if phase.get("phase") == "Distributing":
        return f"key {phase.get('keyId')} distributed since {phase.get('since')}, not active yet"
    return f"key {phase.get('keyId')} active"
