"""The operator's Kafka adapter (confluent_kafka's AdminClient): topics, offsets, and through
kafka_access (a mixin) SCRAM users and ACLs.

Every call is bounded by a timeout and turns the client's many failure shapes into two
exceptions (kafka_errors): `KafkaUnreachable` (retry later, with backoff) and
`KafkaRequestFailed` (the broker answered no). librdkafka's own connection chatter goes to the
`loan_operator.librdkafka` logger at DEBUG, so an unreachable broker is reported once per
attempt by the caller, not every reconnect by the library.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from loan_operator.kafka_access import KafkaAccessAdmin
from loan_operator.kafka_errors import (
    COORDINATOR_MOVING,
    TopicExists,
    TopicMissing,
    error_code,
    result,
    translate,
)
from loan_operator.scaling import PartitionOffsets
from loan_operator.topics import ObservedTopic, TopicSpec
from prequal.kafka_security import KafkaConnection


class _LibrdkafkaLog(logging.LoggerAdapter[logging.Logger]):
    """librdkafka logs through a Python logger; everything it says is DEBUG for us."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


class KafkaAdmin(KafkaAccessAdmin):
    """Admin operations against one cluster (one bootstrap list)."""

    def __init__(self, connection: KafkaConnection, timeout: float = 5.0) -> None:
        self.bootstrap = connection.bootstrap_servers
        self.timeout = timeout
        timeout_ms = int(timeout * 1000)
        self._config: dict[str, Any] = {
            **connection.config(),
            "client.id": "loan-operator",
            "socket.timeout.ms": timeout_ms,
            "socket.connection.setup.timeout.ms": timeout_ms,
            "reconnect.backoff.max.ms": 10_000,
            "logger": _LibrdkafkaLog(logging.getLogger("loan_operator.librdkafka"), {}),
        }
        self._client = AdminClient(self._config)
        self._consumers: dict[str, Consumer] = {}
        self._lock = threading.Lock()

    def observe_topics(self, names: Iterable[str]) -> dict[str, ObservedTopic]:
        """Partitions, replication factor and config of each named topic that exists."""
        try:
            metadata = self._client.list_topics(timeout=self.timeout)
        except Exception as exc:
            raise translate(exc) from exc
        present = [n for n in names if n in metadata.topics and metadata.topics[n].error is None]
        if not present:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, n) for n in present]
        futures = self._client.describe_configs(resources, request_timeout=self.timeout)
        observed = {}
        for resource, future in futures.items():
            entries = result(future, self.timeout)
            topic = metadata.topics[resource.name]
            partitions = topic.partitions
            replication = len(next(iter(partitions.values())).replicas) if partitions else 0
            observed[resource.name] = ObservedTopic(
                resource.name,
                len(partitions),
                replication,
                {k: str(v.value) for k, v in entries.items() if v.value is not None},
            )
        return observed

    def create_topic(self, topic: TopicSpec) -> None:
        new = NewTopic(
            topic.name,
            num_partitions=topic.partitions,
            replication_factor=topic.replication_factor,
            config=dict(topic.config),
        )
        futures = self._client.create_topics([new], request_timeout=self.timeout)
        # Created a moment ago and not yet in the metadata we read: adopt it.
        with contextlib.suppress(TopicExists):
            result(futures[topic.name], self.timeout)

    def raise_partitions(self, name: str, total: int) -> None:
        futures = self._client.create_partitions(
            [NewPartitions(name, total)], request_timeout=self.timeout
        )
        result(futures[name], self.timeout)

    def alter_config(self, name: str, values: Mapping[str, str]) -> None:
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in values.items()
        ]
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=entries)
        futures = self._client.incremental_alter_configs([resource], request_timeout=self.timeout)
        for future in futures.values():
            result(future, self.timeout)

    def delete_topics(self, names: Iterable[str]) -> list[str]:
        """Deletes the topics that exist; returns their names."""
        try:
            metadata = self._client.list_topics(timeout=self.timeout)
        except Exception as exc:
            raise translate(exc) from exc
        present = [n for n in names if n in metadata.topics]
        if present:
            futures = self._client.delete_topics(present, request_timeout=self.timeout)
            for future in futures.values():
                result(future, self.timeout)
        return present

    def partition_offsets(self, topic: str, group: str) -> list[PartitionOffsets]:
        """Low and high watermarks and the group's committed offset, per partition."""
        try:
            metadata = self._client.list_topics(topic, timeout=self.timeout)
        except Exception as exc:
            raise translate(exc) from exc
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise TopicMissing(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(described.partitions)]
        lows = self._offsets(tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        highs = self._offsets(tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        committed = self._committed(group, tps)
        return [
            PartitionOffsets(
                tp.partition, lows[tp.partition], highs[tp.partition], committed.get(tp.partition)
            )
            for tp in tps
        ]

    def _committed(self, group: str, tps: list[TopicPartition]) -> dict[int, int | None]:
        """The group's committed offsets, read through a Consumer that never joins the group.

        Not AdminClient.list_consumer_group_offsets: for a group the broker has not seen yet it
        can crash the process (confluent-kafka-python #1982, librdkafka NOT_COORDINATOR path).
        """
        with self._lock:
            consumer = self._consumers.get(group)
            if consumer is None:
                consumer = Consumer(
                    {**self._config, "group.id": group, "enable.auto.commit": False}
                )
                self._consumers[group] = consumer
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    answered = consumer.committed(
                        [TopicPartition(tp.topic, tp.partition) for tp in tps],
                        timeout=self.timeout,
                    )
                    break
                except KafkaException as exc:
                    # The group coordinator is still being found or loaded: a moment, not a fault.
                    if error_code(exc) not in COORDINATOR_MOVING or time.monotonic() > deadline:
                        raise translate(exc) from exc
                    time.sleep(0.2)
                except Exception as exc:
                    raise translate(exc) from exc
        return {tp.partition: None if tp.offset < 0 else tp.offset for tp in answered}

    def _offsets(self, tps: list[TopicPartition], spec: OffsetSpec) -> dict[int, int]:
        futures = self._client.list_offsets(dict.fromkeys(tps, spec), request_timeout=self.timeout)
        return {tp.partition: result(f, self.timeout).offset for tp, f in futures.items()}


class KafkaAdmins:
    """One AdminClient per bootstrap list, shared by the pipelines that name it; each connects
    with the operator's own identity (a super user: it creates topics, users and ACLs)."""

    def __init__(self, identity: KafkaConnection, timeout: float = 5.0) -> None:
        self.identity = identity
        self.timeout = timeout
        self._clients: dict[str, KafkaAdmin] = {}
        self._lock = threading.Lock()

    def __call__(self, bootstrap: str) -> KafkaAdmin:
        with self._lock:
            if bootstrap not in self._clients:
                self._clients[bootstrap] = KafkaAdmin(self.identity.at(bootstrap), self.timeout)
            return self._clients[bootstrap]
