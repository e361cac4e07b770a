"""Reading a topic back in tests: the one Kafka reader of the test suite.

It assigns itself every partition from the beginning (no group: no rebalance to wait for, no
offsets committed) and returns the records as the consumer runtime sees them
(`prequal.kafka.InboundRecord`: key, value, raw headers and `header(name)`, partition, offset).
To show a topic holds nothing (or exactly what it holds now), read it to its end with
`prequal.kafka.read_topic` instead: a wait for records that should not come cannot fail.
`dump_topic` reads a topic to the end it has when called, for the chaos run's checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from prequal.kafka import InboundRecord
from prequal.kafka_security import KafkaConnection


def read_records(
    connection: KafkaConnection,
    topic: str,
    until: int,
    timeout: float = 60.0,
    settle: float = 1.0,
) -> list[InboundRecord]:
    """Every record of `topic` from the start: reads until at least `until` came (or `timeout`
    passed), then `settle` seconds more for any that follow."""
    consumer = Consumer(
        {**connection.config(), "group.id": "test-reader", "enable.auto.commit": False}
    )
    records: list[InboundRecord] = []
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(records) < until and time.monotonic() < deadline:
            records.extend(_take(consumer, 0.5))
        settle_until = time.monotonic() + settle
        while (left := settle_until - time.monotonic()) > 0:
            records.extend(_take(consumer, left))
    finally:
        consumer.close()
    return records


def _take(consumer: Consumer, timeout: float) -> list[InboundRecord]:
    taken: list[InboundRecord] = []
    for msg in consumer.consume(num_messages=1000, timeout=timeout):
        assert msg.error() is None, msg.error()
        taken.append(
            InboundRecord(
                topic=msg.topic() or "",
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                key=msg.key(),
                value=msg.value(),
                headers=[
                    (name, value.encode() if isinstance(value, str) else value)
                    for name, value in _pairs(msg.headers())
                ],
            )
        )
    return taken


def _pairs(raw: object) -> list[tuple[str, str | bytes | None]]:
    if isinstance(raw, dict):
        return list(raw.items())
    return list(raw) if isinstance(raw, list) else []


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes
    value: bytes
    event_id: str
    raw_headers: bytes


def dump_topic(
    connection: KafkaConnection, topic: str, group: str = "chaos-dump"
) -> Iterator[Record]:
    """Every record of `topic`, from the beginning to the end it had when called."""
    consumer = Consumer({**connection.config(), "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        for partition in metadata.topics[topic].partitions:
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            while True:
                msg = consumer.poll(5)
                if msg is None:
                    raise RuntimeError(f"{topic}[{partition}] gave nothing before offset {high}")
                if msg.error():
                    continue
                headers = dict(msg.headers() or [])
                event_id = headers.get("ce_id") or b""
                yield Record(
                    topic,
                    partition,
                    msg.offset(),
                    msg.timestamp()[1],
                    msg.key() or b"",
                    msg.value() or b"",
                    event_id.decode() if isinstance(event_id, bytes) else str(event_id),
                    b"".join(v for v in headers.values() if isinstance(v, bytes)),
                )
                if msg.offset() >= high - 1:
                    break
    finally:
        consumer.close()


def all_topics(connection: KafkaConnection, group: str = "chaos-dump") -> list[str]:
    """Every topic but Kafka's own (`__consumer_offsets` and the like)."""
    consumer = Consumer({**connection.config(), "group.id": group})
    try:
        return sorted(t for t in consumer.list_topics(timeout=10).topics if not t.startswith("__"))
    finally:
        consumer.close()


def settings_of(connection: KafkaConnection) -> dict[str, Any]:
    """Keyword arguments that make a Settings object connect like `connection`."""
    return {name.lower(): value for name, value in connection.environment().items()}
