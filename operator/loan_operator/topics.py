"""Which topics a pipeline wants, and what it takes to get there from what Kafka has.

Learned from Strimzi's topic operator: adopt a topic that already exists instead of failing,
only ever raise partitions (Kafka cannot lower them without losing data and key ordering), never
change the replication factor behind the user's back, and compare only the config keys the
spec names — the broker reports dozens of defaults that are not drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loan_operator.spec import DLQ_SUFFIX, LOGICAL_TOPICS, KafkaSpec


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObservedTopic:
    """What Kafka reports for one topic: partition count, replication factor, config values."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicPlan:
    """The changes to make, and the ones refused (with the reason a condition will show)."""

    create: tuple[TopicSpec, ...] = ()
    raise_partitions: Mapping[str, int] = field(default_factory=dict)
    alter_config: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.create or self.raise_partitions or self.alter_config)


def desired_topics(kafka: KafkaSpec) -> list[TopicSpec]:
    """The three event topics and their dead-letter topics, prefix applied."""
    topics = []
    for logical in LOGICAL_TOPICS:
        name = kafka.topic_name(logical)
        topics.append(
            TopicSpec(name, kafka.partitions, kafka.replication_factor, dict(kafka.config))
        )
        topics.append(
            TopicSpec(
                f"{name}{DLQ_SUFFIX}",
                kafka.dlq.partitions,
                kafka.replication_factor,
                dict(kafka.dlq.config),
            )
        )
    return topics


def plan_topics(desired: list[TopicSpec], observed: Mapping[str, ObservedTopic]) -> TopicPlan:
    create: list[TopicSpec] = []
    raise_partitions: dict[str, int] = {}
    alter_config: dict[str, dict[str, str]] = {}
    refused: dict[str, str] = {}
    for topic in desired:
        actual = observed.get(topic.name)
        if actual is None:
            create.append(topic)
            continue
        if topic.partitions > actual.partitions:
            raise_partitions[topic.name] = topic.partitions
        elif topic.partitions < actual.partitions:
            refused[topic.name] = (
                f"topic {topic.name} has {actual.partitions} partitions; lowering them to "
                f"{topic.partitions} is not supported by Kafka"
            )
        if topic.replication_factor != actual.replication_factor:
            refused[topic.name] = (
                f"topic {topic.name} has replication factor {actual.replication_factor}; "
                f"changing it to {topic.replication_factor} is not supported by the operator"
            )
        drift = {k: v for k, v in topic.config.items() if actual.config.get(k) != v}
        if drift:
            alter_config[topic.name] = drift
    return TopicPlan(tuple(create), raise_partitions, alter_config, refused)
