"""The LoanPipeline spec as typed values, with the CRD's defaults applied once more.

The API server applies the CRD's defaults and validation before the operator sees an object;
parsing again here keeps the rest of the operator free of `dict.get` chains and lets unit tests
build specs from partial dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from loan_operator.decision_policy import DEFAULT_DECISION_POLICY, with_defaults

APPLICATIONS_SUBMITTED = "loan_applications_submitted"
CREDIT_REPORTS = "credit_reports_generated"
APPLICATIONS_DECIDED = "loan_applications_decided"
LOGICAL_TOPICS = (APPLICATIONS_SUBMITTED, CREDIT_REPORTS, APPLICATIONS_DECIDED)
DLQ_SUFFIX = "_dlq"

OffsetResetPolicy = Literal["earliest", "latest"]
DeletionPolicy = Literal["Retain", "Delete"]


@dataclass(frozen=True)
class DlqSpec:
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap_servers: str
    topic_prefix: str = ""
    partitions: int = 3
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    dlq: DlqSpec = field(default_factory=DlqSpec)

    def topic_name(self, logical: str) -> str:
        return f"{self.topic_prefix}{logical}"


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    deployment: str
    topic: str
    consumer_group: str
    min_replicas: int = 1
    max_replicas: int = 6
    lag_threshold: int = 100
    activation_lag_threshold: int = 0
    allow_idle_consumers: bool = False
    offset_reset_policy: OffsetResetPolicy = "earliest"
    polling_interval_seconds: float = 15
    scale_down_stabilization_seconds: float = 300


@dataclass(frozen=True)
class PipelineSpec:
    kafka: KafkaSpec
    database_secret_name: str
    key_secret_name: str
    key_version: int = 1
    # The blind-index keys' version: its own Secret, its own two-phase rotation.
    index_key_version: int = 1
    # The webhook dispatcher's key pair: its own Secret, its own two-phase rotation.
    webhook_key_version: int = 1
    decision_policy: Mapping[str, Any] = field(
        default_factory=lambda: with_defaults(DEFAULT_DECISION_POLICY)
    )
    challenger_policy: Mapping[str, Any] | None = None
    consumers: tuple[ConsumerSpec, ...] = ()
    deletion_policy: DeletionPolicy = "Retain"

    @property
    def min_credit_score(self) -> int:
        return int(self.decision_policy["minCreditScore"])

    @property
    def term_months(self) -> int:
        return int(self.decision_policy["termMonths"])


def _strings(raw: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}


def parse_consumer(raw: Mapping[str, Any]) -> ConsumerSpec:
    policy = raw.get("offsetResetPolicy", "earliest")
    return ConsumerSpec(
        name=str(raw["name"]),
        deployment=str(raw["deployment"]),
        topic=str(raw["topic"]),
        consumer_group=str(raw["consumerGroup"]),
        min_replicas=int(raw.get("minReplicas", 1)),
        max_replicas=int(raw.get("maxReplicas", 6)),
        lag_threshold=int(raw.get("lagThreshold", 100)),
        activation_lag_threshold=int(raw.get("activationLagThreshold", 0)),
        allow_idle_consumers=bool(raw.get("allowIdleConsumers", False)),
        offset_reset_policy="latest" if policy == "latest" else "earliest",
        polling_interval_seconds=float(raw.get("pollingIntervalSeconds", 15)),
        scale_down_stabilization_seconds=float(raw.get("scaleDownStabilizationSeconds", 300)),
    )


def parse_spec(raw: Mapping[str, Any]) -> PipelineSpec:
    kafka = raw["kafka"]
    dlq = kafka.get("dlq") or {}
    policy = raw.get("deletionPolicy", "Retain")
    encryption = raw["encryption"]
    return PipelineSpec(
        kafka=KafkaSpec(
            bootstrap_servers=str(kafka["bootstrapServers"]),
            topic_prefix=str(kafka.get("topicPrefix", "")),
            partitions=int(kafka.get("partitions", 3)),
            replication_factor=int(kafka.get("replicationFactor", 1)),
            config=_strings(kafka.get("config")),
            dlq=DlqSpec(
                partitions=int(dlq.get("partitions", 1)), config=_strings(dlq.get("config"))
            ),
        ),
        database_secret_name=str(raw["database"]["secretName"]),
        key_secret_name=str(encryption["keySecretName"]),
        key_version=int(encryption.get("keyVersion", 1)),
        index_key_version=int(encryption.get("indexKeyVersion", 1)),
        webhook_key_version=int(encryption.get("webhookKeyVersion", 1)),
        decision_policy=with_defaults(raw.get("decisionPolicy")),
        challenger_policy=(
            None if raw.get("challengerPolicy") is None else with_defaults(raw["challengerPolicy"])
        ),
        consumers=tuple(parse_consumer(c) for c in raw.get("consumers") or ()),
        deletion_policy="Delete" if policy == "Delete" else "Retain",
    )
