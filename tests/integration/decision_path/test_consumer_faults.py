"""The consumer runtime under faults at exact points: offsets only for settled records, a stop
during a retry wait, and at most one dead letter per event id and group.

Faults are injected where the runtime meets the world: a handler that ends its own database
session mid-batch (a real AdminShutdown from the server), a consumer whose offsets never reach
Kafka (what a crash before the commit looks like to the next owner), and, for the rebalance
timing that real Kafka cannot be made to repeat, a scripted consumer that revokes and returns
a partition during the runtime's waits.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from decision_service.handler import DecideApplication, DecisionHandler, DecisionMetrics
from decision_service.rules import DecisionPolicy
from prequal import dlq, events
from prequal.consumer import (
    AfterCommit,
    ConsumerMetrics,
    ConsumerRuntime,
    DeadLetterWriter,
    PoisonRecordError,
    RetryPolicy,
)
from prequal.events import CloudEventAttributes
from prequal.kafka import (
    EventConsumer,
    InboundRecord,
    create_consumer,
    create_producer,
    create_topics,
    read_topic,
)
from prequal.kafka_security import KafkaConnection
from tests.kafka_reader import read_records
from tests.polling import wait_until

from .conftest import (
    GROUP_DECISION,
    Topics,
    World,
    application_status,
    insert_application,
    report_payload,
)


def _single_partition_topics(connection: KafkaConnection) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    names = Topics(f"submitted-1p-{suffix}", f"reports-1p-{suffix}")
    create_topics(connection, {names.reports: 1, dlq.dlq_topic(names.reports): 1})
    return names


def _dead_letters_of(connection: KafkaConnection, topic: str, event_id: uuid.UUID) -> int:
    records = read_records(connection, dlq.dlq_topic(topic), until=1, timeout=5)
    return sum(1 for r in records if r.header("ce_id") == str(event_id))


@dataclass
class _Thread:
    runtime: ConsumerRuntime[Any]
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def stop(self) -> None:
        self.runtime.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


def _run(runtime: ConsumerRuntime[Any]) -> _Thread:
    running = _Thread(runtime, threading.Thread(target=lambda: None))

    def _target() -> None:
        try:
            runtime.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            running.errors.append(exc)

    running.thread = threading.Thread(target=_target, daemon=True)
    running.thread.start()
    return running


def _runtime(
    world: World, topic: str, handler: Any, consumer: Any, registry: CollectorRegistry
) -> ConsumerRuntime[Any]:
    url = world.database_url
    return ConsumerRuntime(
        topic=topic,
        group=GROUP_DECISION,
        consumer=consumer,
        handler=handler,
        dead_letters=DeadLetterWriter(create_producer(world.kafka, "faults-dlq")),
        connect=lambda: psycopg.connect(url, autocommit=True, connect_timeout=3),
        metrics=ConsumerMetrics(registry),
        retry=RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2),
        outage_backoff=RetryPolicy(initial_backoff=0.2, max_backoff=1.0),
        lag_interval=0.5,
    )


# --- hole 7: a stop during a retry wait ------------------------------------------------------


def test_a_stop_during_a_retry_wait_leaves_the_record_to_the_next_owner(world: World) -> None:
    topics = world.topics
    # income × term overflows numeric(16,2) under a 600-month policy: fails for its own reasons.
    app = insert_application(
        world.database_url,
        world.keyring,
        monthly_income=Decimal("999999999999.00"),
        requested_amount=Decimal(1000),
    )
    first = world.consumers.decision(
        topics,
        DecisionPolicy(term_months=600),
        retry=RetryPolicy(max_attempts=3, initial_backoff=60, max_backoff=60),
    )
    world.producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(app, 700), key=str(app.id)
    )
    retried = {"topic": topics.reports, "group": GROUP_DECISION, "outcome": "retried"}
    wait_until(lambda: first.sample("consumer_records_total", **retried) >= 1)
    first.stop()  # SIGTERM's effect, inside the 60 s backoff
    assert first.sample("dlq_records_total", topic=dlq.dlq_topic(topics.reports)) == 0
    world.consumers.decision(topics)  # the next owner, with a policy the record passes
    wait_until(lambda: application_status(world.database_url, app.id) != "PENDING")
    assert read_topic(world.kafka, dlq.dlq_topic(topics.reports)) == []


# --- hole 8: one dead letter per event id and group ------------------------------------------


class _PoisonThenOutage:
    """Decision handling where one application is poison and another, the first time it is
    applied, ends its own database session (the server answers AdminShutdown)."""

    def __init__(self, poison: uuid.UUID, trigger: uuid.UUID) -> None:
        self.inner = DecisionHandler(DecisionPolicy(), DecisionMetrics(CollectorRegistry()))
        self.poison, self.trigger = poison, trigger
        self.triggered = False

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> DecideApplication:
        return self.inner.decode(event, record)

    def apply(
        self, conn: psycopg.Connection[Any], command: DecideApplication
    ) -> AfterCommit | None:
        if command.report.application_id == self.poison:
            raise PoisonRecordError("this report can never be applied")
        if command.report.application_id == self.trigger and not self.triggered:
            self.triggered = True
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return self.inner.apply(conn, command)


def test_a_poison_record_found_before_an_outage_is_dead_lettered_once(world: World) -> None:
    topics = _single_partition_topics(world.kafka)
    poison = insert_application(world.database_url, world.keyring)
    trigger = insert_application(world.database_url, world.keyring)
    poison_id = world.producer.event(
        topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(poison, 700),
        key=str(poison.id),
    )
    world.producer.event(
        topics.reports,
        events.CREDIT_REPORT_GENERATED,
        report_payload(trigger, 700),
        key=str(trigger.id),
    )
    handler = _PoisonThenOutage(poison.id, trigger.id)
    consumer = create_consumer(world.kafka, GROUP_DECISION, "faults-poison")
    running = _run(_runtime(world, topics.reports, handler, consumer, CollectorRegistry()))
    try:
        wait_until(lambda: application_status(world.database_url, trigger.id) == "PRE_APPROVED")
        assert handler.triggered
    finally:
        running.stop()
    assert _dead_letters_of(world.kafka, topics.reports, poison_id) == 1


class _OffsetsNeverCommitted(EventConsumer):
    """A real consumer whose offsets never reach Kafka: to the next owner of its partitions,
    exactly what a crash after the batch and before the commit looks like."""

    def store_offsets(self, records: list[InboundRecord]) -> None:
        return

    def commit(self) -> None:
        return


def test_a_dead_letter_is_not_written_again_by_the_next_owner_after_a_crash(world: World) -> None:
    topics = _single_partition_topics(world.kafka)
    ghost = uuid.uuid4()  # no such application: poison (UnknownApplicationError)
    payload = report_payload(insert_application(world.database_url, world.keyring), 700)
    payload["application_id"] = str(ghost)
    event_id = world.producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, payload, key=str(ghost)
    )
    handler = DecisionHandler(DecisionPolicy(), DecisionMetrics(CollectorRegistry()))
    crashed_registry = CollectorRegistry()
    real = create_consumer(world.kafka, GROUP_DECISION, "faults-crashed")
    crashed = _run(
        _runtime(
            world,
            topics.reports,
            handler,
            _OffsetsNeverCommitted(real._consumer),
            crashed_registry,
        )
    )
    dead = {"topic": dlq.dlq_topic(topics.reports)}
    try:
        wait_until(lambda: (crashed_registry.get_sample_value("dlq_records_total", dead) or 0) == 1)
    finally:
        crashed.stop()
    heir_registry = CollectorRegistry()
    heir_consumer = create_consumer(world.kafka, GROUP_DECISION, "faults-heir")
    heir = _run(_runtime(world, topics.reports, handler, heir_consumer, heir_registry))
    duplicate = {"topic": topics.reports, "group": GROUP_DECISION}
    try:
        # The heir reads the record again (nothing was committed) and settles it.
        wait_until(
            lambda: (
                (heir_registry.get_sample_value("consumer_consumed_records_total", duplicate) or 0)
                >= 1
            )
        )
    finally:
        heir.stop()
    assert _dead_letters_of(world.kafka, topics.reports, event_id) == 1


# --- hole 6: offsets only for settled records ------------------------------------------------


class _AlwaysFails:
    """Every record fails for its own reasons (a bug, say)."""

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> uuid.UUID:
        return event.id

    def apply(self, conn: psycopg.Connection[Any], command: uuid.UUID) -> AfterCommit | None:
        raise RuntimeError("fails every time")


class _Rebalancing:
    """A scripted consumer: one batch of two records on partitions 0 and 1, then partition 0
    revoked during the first retry wait and assigned back during the second."""

    def __init__(self, records: list[InboundRecord]) -> None:
        self.records = records
        self.stored: list[InboundRecord] = []
        self.waits = 0
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.partitions = sorted({(r.topic, r.partition) for r in records})

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke
        on_assign(self.partitions)

    def consume(self, max_records: int, timeout: float) -> list[InboundRecord]:
        batch, self.records = self.records, []
        if not batch:
            time.sleep(min(timeout, 0.05))
        return batch

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self.waits += 1
        if self.waits == 1:
            self.on_revoke([self.partitions[0]])
        elif self.waits == 2:
            self.on_assign([self.partitions[0]])

    def resume(self, partitions: list[tuple[str, int]]) -> None:
        return

    def assignment(self) -> list[tuple[str, int]]:
        return self.partitions

    def store_offsets(self, records: list[InboundRecord]) -> None:
        self.stored.extend(records)

    def lag(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return


def test_a_partition_revoked_and_returned_mid_batch_gets_no_offset_for_unapplied_records(
    world: World,
) -> None:
    topic = world.topics.reports

    def record(partition: int) -> InboundRecord:
        headers = events.binary_headers(
            uuid.uuid4(), events.CREDIT_REPORT_GENERATED, datetime.now(UTC)
        )
        return InboundRecord(topic, partition, 0, uuid.uuid4().hex.encode(), b"{}", headers)

    scripted = _Rebalancing([record(0), record(1)])
    registry = CollectorRegistry()
    runtime = _runtime(world, topic, _AlwaysFails(), scripted, registry)
    running = _run(runtime)
    try:
        wait_until(lambda: scripted.stored)
    finally:
        running.stop()
    # Partition 1's record was dead-lettered after its attempts: settled. Partition 0's was
    # dropped while revoked and never applied: the next owner must read it again.
    assert [(r.partition, r.offset) for r in scripted.stored] == [(1, 0)]
