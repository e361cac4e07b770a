"""Converging one LoanPipeline's world to its spec, and scaling its consumers against lag.

Called only from the pipeline's worker thread, so the in-memory `PipelineState`
(pipeline_state.py) has one writer and the status written from it never races with itself.
Each step records its outcome as a condition (reporting.py) instead of raising: an
unreachable Kafka is a state to report and retry, not a crash. What deletion does is
deletion.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from loan_operator import conditions as cond
from loan_operator.decision_policy import canonical_json, policy_version
from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kafka_errors import KafkaRequestFailed, KafkaUnreachable, TopicMissing
from loan_operator.kafka_principals import KafkaPrincipals
from loan_operator.key_secrets import KeySecrets, keys_message
from loan_operator.kube import KIND, Kube, PipelineRef, now_iso
from loan_operator.metrics import Metrics
from loan_operator.ownership import Refusal, config_map_claim, deployment_claim
from loan_operator.pipeline_state import ConsumerState, PipelineState
from loan_operator.reporting import Reporter
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
        self.report = Reporter(kube, metrics)
        self.principals = KafkaPrincipals(kube, self.report.changed, enabled=manage_principals)
        self.keys = KeySecrets(
            kube,
            self.report.changed,
            key_distribution_seconds=key_distribution_seconds,
            sealing_kem=sealing_kem,
        )
        self.kafka = kafka
        self.metrics = metrics
        self.clock = clock

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
                self.report.changed(
                    ref,
                    "TopicCreated",
                    f"created topic {topic.name} with {topic.partitions} partitions",
                )
            for name, total in plan.raise_partitions.items():
                admin.raise_partitions(name, total)
                self.report.changed(
                    ref,
                    "PartitionsIncreased",
                    f"topic {name}: {observed[name].partitions} → {total} partitions",
                )
            for name, values in plan.alter_config.items():
                admin.alter_config(name, values)
                drift = ", ".join(
                    f"{k}: {observed[name].config.get(k)} → {v}" for k, v in values.items()
                )
                self.report.changed(ref, "TopicConfigUpdated", f"topic {name}: {drift}")
        except KafkaUnreachable as exc:
            self.report.condition(
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
            self.report.condition(
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
            self.report.condition(
                state,
                cond.TOPICS_READY,
                generation,
                ok=False,
                reason="NotSupported",
                message="; ".join(plan.refused.values()),
            )
            return False
        self.report.condition(
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
        self.report.condition(
            state, cond.KAFKA_ACCESS_READY, generation, ok=ok, reason=reason, message=message
        )
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
            self.report.changed(
                ref,
                f"ConfigMap{changed.capitalize()}",
                f"ConfigMap {config_map_name(ref.name)} {changed}",
            )
        if problem:
            reason, message = problem
            self.report.condition(
                state, cond.SECRETS_READY, generation, ok=False, reason=reason, message=message
            )
            return False
        self.report.condition(
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
            self.report.changed(
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
            self.report.condition(
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
            self.report.condition(
                state,
                cond.SCALING_ACTIVE,
                generation,
                ok=False,
                reason=errors[0][0],
                message="; ".join(e[1] for e in errors),
            )
            return
        observed = [c.name for c in spec.consumers if c.name in state.consumers]
        self.report.condition(
            state,
            cond.SCALING_ACTIVE,
            generation,
            ok=True,
            reason="LagObserved",
            message=f"scaling {', '.join(observed)} against lag",
        )
