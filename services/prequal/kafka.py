"""The Kafka adapter: the only module that imports confluent_kafka.

The producer side serves the outbox publisher: an idempotent producer (acks=all, ordered per
partition, no duplicates from its own retries) that batches with `linger.ms` and reports every
record through a delivery callback, so nothing flushes per record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from prequal.kafka_acl import READER_GROUP
from prequal.kafka_security import KafkaConnection

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[str | None], None]
"""Called once per record with None on success, else the error text."""

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # No compression: the broker decompresses every compressed batch to validate it, and a
    # batch here holds one to three records. That saved 7-8 % of Kafka's CPU per application
    # for 56 % more bytes in the log (docs/benchmarks.md, "PostgreSQL's and Kafka's share").
    "compression.type": "none",
    # A record not confirmed in this time fails its callback; the row stays in the outbox.
    "message.timeout.ms": 15_000,
    "socket.connection.setup.timeout.ms": 5_000,
    "reconnect.backoff.max.ms": 2_000,
}


class KafkaUnavailableError(RuntimeError):
    """The cluster did not answer in time."""


# librdkafka's own log lines (it writes them to stderr in its own format otherwise) go through
# Python logging, hence as JSON through the redacting handler, like every other line.
LIBRDKAFKA_LOG = logging.getLogger("prequal.librdkafka")


def _log_error(err: KafkaError) -> None:
    # librdkafka reports transport trouble here; it recovers by itself, so it is a warning.
    log.warning("kafka client: %s", err.str())


def _bounded(timeout: float) -> float:
    """A timeout librdkafka reads as we mean it.

    librdkafka takes any negative timeout as "wait forever": a deadline computed as
    `deadline - time.monotonic()` that has just passed must mean "do not wait", never that.
    """
    return max(timeout, 0.0)


@dataclass
class EventProducer:
    """A thin typed face over confluent_kafka.Producer."""

    _producer: Producer

    def produce(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]],
        on_delivery: DeliveryCallback,
    ) -> None:
        def _delivered(err: KafkaError | None, _msg: object) -> None:
            on_delivery(None if err is None else err.str())

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=_delivered
                )
                return
            except BufferError:
                # The local queue is full: serve callbacks to make room, then retry.
                self._producer.poll(0.05)

    def produce_batch(
        self,
        records: Iterable[tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]]]],
        on_delivery: DeliveryCallback,
    ) -> int:
        """Produces (topic, key, value, headers) records sharing one callback; returns the count.

        One callback object for the whole batch keeps the per-record cost at the C call.
        """

        def _delivered(err: KafkaError | None, _msg: object) -> None:
            on_delivery(None if err is None else err.str())

        produce = self._producer.produce
        count = 0
        for topic, key, value, headers in records:
            while True:
                try:
                    produce(topic, value=value, key=key, headers=headers, on_delivery=_delivered)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            count += 1
        return count

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(_bounded(timeout)))

    def flush(self, timeout: float) -> int:
        """Waits for outstanding records; returns how many are still undelivered."""
        return int(self._producer.flush(_bounded(timeout)))

    def purge(self) -> None:
        """Drops records still queued locally (their callbacks report failure)."""
        self._producer.purge()
        self._producer.poll(0)

    def pending(self) -> int:
        return len(self._producer)

    def reachable(self, timeout: float = 2.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True


def create_producer(
    connection: KafkaConnection, client_id: str, overrides: Mapping[str, Any] | None = None
) -> EventProducer:
    config = {
        **PRODUCER_DEFAULTS,
        **connection.config(),
        "client.id": client_id,
        "error_cb": _log_error,
        "logger": LIBRDKAFKA_LOG,
        **(overrides or {}),
    }
    return EventProducer(Producer(config))


def create_topics(
    connection: KafkaConnection, topics: Mapping[str, int], timeout: float = 30.0
) -> None:
    """Creates missing topics (name → partitions); existing ones are left alone.

    For local runs and tests: in Kubernetes the operator owns the topics.
    """
    admin = AdminClient(connection.config())
    futures = admin.create_topics(
        [
            NewTopic(name, num_partitions=parts, replication_factor=1)
            for name, parts in topics.items()
        ]
    )
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailableError(f"could not create topic {name}: {exc}") from exc


# --- consumer side (the decision path: credit-service, decision-service, prequalctl dlq) --------

CONSUMER_DEFAULTS: dict[str, Any] = {
    # Offsets are stored by the runtime only after a record's effects are committed to the
    # database (or its DLQ copy is confirmed); librdkafka commits stored offsets in the background.
    "enable.auto.commit": True,
    "auto.commit.interval.ms": 1_000,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
    "max.poll.interval.ms": 300_000,
    # With fetch.min.bytes at 1 the broker answers a fetch as soon as one record arrives, so
    # this bounds only how often an idle consumer asks again: latency does not depend on it,
    # the broker's CPU does (10 ms cost a fetch per partition leader every 10 ms when idle).
    "fetch.wait.max.ms": 100,
    "socket.connection.setup.timeout.ms": 5_000,
    "reconnect.backoff.max.ms": 2_000,
}

PartitionsCallback = Callable[[list[tuple[str, int]]], None]
"""Called with (topic, partition) pairs on assignment or revocation."""


@dataclass(frozen=True)
class InboundRecord:
    """One consumed record, detached from librdkafka's Message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return None if value is None else value.decode("utf-8", "replace")
        return None


class EventConsumer:
    """A thin typed face over confluent_kafka.Consumer, for the one consumer runtime."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def subscribe(
        self, topics: list[str], on_assign: PartitionsCallback, on_revoke: PartitionsCallback
    ) -> None:
        def _pairs(partitions: list[TopicPartition]) -> list[tuple[str, int]]:
            return [(tp.topic, tp.partition) for tp in partitions]

        def _assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_assign(_pairs(partitions))

        def _revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            on_revoke(_pairs(partitions))
            self.commit()  # what was stored for the partitions we give away

        self._consumer.subscribe(topics, on_assign=_assigned, on_revoke=_revoked, on_lost=_revoked)

    def consume(self, max_records: int, timeout: float) -> list[InboundRecord]:
        """Waits up to `timeout` for one record, then takes what else is already fetched.

        (librdkafka's batch consume waits for the whole batch or the timeout: at low rates that
        would add the timeout to every record's latency.)
        """
        messages = self._consumer.consume(num_messages=1, timeout=_bounded(timeout))
        if messages and max_records > 1:
            messages += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        records: list[InboundRecord] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                # Partition EOF, transport errors: librdkafka recovers by itself.
                log.warning("kafka consumer: %s", err.str())
                continue
            records.append(_inbound(msg))
        return records

    def store_offsets(self, records: list[InboundRecord]) -> None:
        """Marks records done: the background commit picks up offset + 1 per partition."""
        if not records:
            return
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            where = (record.topic, record.partition)
            latest[where] = max(latest.get(where, -1), record.offset)
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in latest.items()]
            )
        except KafkaException as exc:
            # The partition was revoked meanwhile: its new owner re-reads from the committed
            # offset and the inbox turns the repeat into a duplicate.
            log.warning("could not store offsets: %s", exc)

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self._consumer.pause([TopicPartition(t, p) for t, p in partitions])

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        self._consumer.resume([TopicPartition(t, p) for t, p in partitions])

    def assignment(self) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def lag(self) -> dict[str, int]:
        """Records not yet consumed, per topic, over this member's partitions (cached figures)."""
        partitions = self._consumer.assignment()
        if not partitions:
            return {}
        lag: dict[str, int] = {}
        for tp in self._consumer.position(partitions):
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                continue
            behind = high - tp.offset if tp.offset >= 0 else 0
            lag[tp.topic] = lag.get(tp.topic, 0) + max(behind, 0)
        return lag

    def commit(self) -> None:
        """Commits stored offsets now (at shutdown and on revocation); nothing stored is fine."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                log.warning("offset commit failed: %s", exc.args[0].str())

    def close(self) -> None:
        self.commit()
        self._consumer.close()


def create_consumer(
    connection: KafkaConnection,
    group_id: str,
    client_id: str,
    overrides: Mapping[str, Any] | None = None,
) -> EventConsumer:
    config = {
        **CONSUMER_DEFAULTS,
        **connection.config(),
        "group.id": group_id,
        "client.id": client_id,
        "error_cb": _log_error,
        "logger": LIBRDKAFKA_LOG,
        **(overrides or {}),
    }
    return EventConsumer(Consumer(config))


def _inbound(msg: Message) -> InboundRecord:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None
    assert partition is not None
    assert offset is not None
    headers: list[tuple[str, bytes | None]] = []
    raw = msg.headers() or []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        headers.append((name, value.encode() if isinstance(value, str) else value))
    return InboundRecord(topic, partition, offset, msg.key(), msg.value(), headers)


def read_topic(
    connection: KafkaConnection, topic: str, timeout: float = 15.0
) -> list[InboundRecord]:
    """Every record of a topic, from the start to its end now, without joining a group.

    For tools (`prequalctl dlq`): it commits nothing, so reading never moves anyone's offsets.
    """
    consumer = Consumer(
        {
            **connection.config(),
            "group.id": READER_GROUP,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": _log_error,
            "logger": LIBRDKAFKA_LOG,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaUnavailableError(f"topic {topic} does not exist or cannot be described")
        ends: dict[int, int] = {}
        for partition in described.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            if high > low:
                ends[partition] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[InboundRecord] = []
        done: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is not None:
                    continue
                record = _inbound(msg)
                records.append(record)
                if record.offset >= ends[record.partition] - 1:
                    done.add(record.partition)
        if len(done) < len(ends):
            raise KafkaUnavailableError(f"could not read {topic} to its end in {timeout:.0f}s")
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
