"""The publisher under faults a worker can meet, run in-process from its composition root.

`outbox_publisher.main.build` takes the producer factory as a seam: the tests hand in real
producers with a fault at an exact point (a fatal error raised by `produce_batch`, a flush held
open until the test lets it go).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException

from devstack.kafka import Kafka
from outbox_publisher.lanes import LANE_LOCK_CLASS
from outbox_publisher.main import build
from outbox_publisher.publisher import Publisher
from outbox_publisher.settings import PublisherSettings
from prequal import outbox
from prequal.events import APPLICATION_SUBMITTED
from prequal.kafka import EventProducer, create_producer, create_topics
from tests.integration.tcp_proxy import TcpProxy
from tests.kafka_reader import read_records, settings_of
from tests.polling import wait_until


def _insert_events(database_url: str, topic: str, count: int) -> set[str]:
    rows = [
        outbox.OutboxRow.new(topic, APPLICATION_SUBMITTED, uuid.uuid4(), json.dumps({"n": n}))
        for n in range(count)
    ]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(outbox.INSERT_SQL, [r.params() for r in rows])
    return {str(r.id) for r in rows}


def _unpublished(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_events").fetchone()
    return int(row[0]) if row else -1


def _lane_locks(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LANE_LOCK_CLASS,),
        ).fetchone()
    return int(row[0]) if row else -1


@pytest.fixture
def fresh_topic(kafka: Kafka) -> str:
    name = f"pubfault-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.connection(), {name: 3})
    return name


@dataclass
class Running:
    publisher: Publisher
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def stop(self) -> None:
        self.publisher.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the publisher did not stop"


@pytest.fixture
def run_publisher(database_url: str, kafka: Kafka, fresh_topic: str) -> Iterator[object]:
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM outbox_events")  # what an earlier test left behind
    started: list[Running] = []

    def _start(
        producers: object,
        rebalance_interval: float = 0.2,
        url: str | None = None,
        lease_idle: float | None = None,
        delivery_timeout: float = 5,
    ) -> Running:
        settings = PublisherSettings(
            database_url=url or database_url,  # type: ignore[arg-type]
            **settings_of(kafka.connection()),
            topic_applications_submitted=fresh_topic,
            outbox_workers=1,
            outbox_poll_interval_seconds=0.2,
            outbox_rebalance_interval_seconds=rebalance_interval,
            outbox_lease_idle_timeout_seconds=lease_idle or rebalance_interval + 60,
            outbox_delivery_timeout_seconds=delivery_timeout,
        )
        publisher, _registry = build(settings, producers)  # type: ignore[arg-type]
        running = Running(publisher, threading.Thread(target=lambda: None))

        def _run() -> None:
            try:
                publisher.run()
            except BaseException as exc:  # noqa: BLE001 - surfaced by the test
                running.errors.append(exc)

        running.thread = threading.Thread(target=_run, name="publisher", daemon=True)
        running.thread.start()
        started.append(running)
        return running

    yield _start
    for running in started:
        running.publisher.stop()
        running.thread.join(30)


class _FatalOnce(EventProducer):
    """A real producer that reports what librdkafka raises once the instance hit a fatal error."""

    def produce_batch(self, records, on_delivery):  # type: ignore[no-untyped-def]
        raise KafkaException(
            KafkaError(KafkaError._FATAL, "injected: idempotent producer fenced", fatal=True)
        )


def test_a_fatal_producer_error_replaces_the_producer_and_the_lanes_keep_publishing(
    run_publisher: object, database_url: str, kafka: Kafka, fresh_topic: str
) -> None:
    made: list[EventProducer] = []

    def producers(worker: int) -> EventProducer:
        real = create_producer(kafka.connection(), f"pubfault-{worker}-{len(made)}")
        made.append(_FatalOnce(real._producer) if not made else real)
        return made[-1]

    ids = _insert_events(database_url, fresh_topic, 20)
    running = run_publisher(producers)  # type: ignore[operator]
    wait_until(lambda: _unpublished(database_url) == 0, timeout=30)
    records = read_records(kafka.connection(), fresh_topic, until=20, timeout=30)
    assert {r.header("ce_id") for r in records} == ids
    assert len(made) == 2, "the failed worker got a new producer"
    assert running.publisher.healthy()
    running.stop()
    assert not running.errors


def test_a_worker_that_cannot_be_rebuilt_stops_the_process_and_frees_its_lanes(
    run_publisher: object, database_url: str, kafka: Kafka
) -> None:
    made: list[EventProducer] = []

    def producers(worker: int) -> EventProducer:
        if made:
            raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "injected: cannot build"))
        made.append(_FatalOnce(create_producer(kafka.connection(), f"pubfault-{worker}")._producer))
        return made[-1]

    _insert_events(database_url, "pubfault-never-sent", 1)
    running = run_publisher(producers)  # type: ignore[operator]
    running.thread.join(30)
    assert not running.thread.is_alive(), "a publisher with a dead worker must stop"
    assert running.publisher.failed
    assert not running.publisher.healthy()
    assert _lane_locks(database_url) == 0


class _HeldFlush(EventProducer):
    """A real producer whose first batch stays unconfirmed until the test releases it."""

    entered: threading.Event
    release: threading.Event

    def flush(self, timeout: float) -> int:
        if not self.release.is_set():
            self.entered.set()
            self.release.wait(60)
        return super().flush(timeout)


def test_a_graceful_stop_keeps_the_lanes_until_the_batch_in_flight_is_confirmed(
    run_publisher: object, database_url: str, kafka: Kafka, fresh_topic: str
) -> None:
    entered, release = threading.Event(), threading.Event()

    def producers(worker: int) -> EventProducer:
        held = _HeldFlush(create_producer(kafka.connection(), f"pubheld-{worker}")._producer)
        held.entered, held.release = entered, release
        return held

    _insert_events(database_url, fresh_topic, 10)
    # No rebalance after the first: a rebalance waits for the batch in flight, which would
    # hide a lease loop that lets its locks go at stop without waiting.
    running = run_publisher(producers, rebalance_interval=60)  # type: ignore[operator]
    assert entered.wait(30), "the first batch never reached its flush"
    held = _lane_locks(database_url)
    assert held == 64
    running.publisher.stop()
    # The lease loop sees the stop within 0.25 s (its LISTEN wait); eight times that, the
    # locks must still be held, since the batch is still in flight.
    deadline = threading.Event()
    for _ in range(10):
        assert _lane_locks(database_url) == held, "lane locks released with a batch in flight"
        deadline.wait(0.2)
    assert running.thread.is_alive()
    release.set()
    running.thread.join(30)
    assert not running.thread.is_alive()
    assert _unpublished(database_url) == 0, "the in-flight batch was confirmed and committed"
    assert _lane_locks(database_url) == 0


def test_a_partitioned_publisher_loses_its_lanes_to_another_within_the_lease_idle_timeout(
    run_publisher: object, database_url: str, kafka: Kafka, fresh_topic: str
) -> None:
    """Bound: OUTBOX_LEASE_IDLE_TIMEOUT_SECONDS (7 s here) + one rebalance (0.2 s) + 3 s."""
    port = int(database_url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = TcpProxy(port)
    proxied = database_url.replace(f":{port}/", f":{proxy.port}/")

    def producers(worker: int) -> EventProducer:
        return create_producer(kafka.connection(), f"partition-{worker}")

    try:
        run_publisher(producers, url=proxied, lease_idle=7, delivery_timeout=1)  # type: ignore[operator]
        wait_until(lambda: _lane_locks(database_url) == 64, timeout=20)
        proxy.blackhole()
        cut = time.monotonic()
        heir = run_publisher(producers, lease_idle=7, delivery_timeout=1)  # type: ignore[operator]
        wait_until(lambda: heir.publisher.metrics.lanes_owned._value.get() == 64, timeout=30)
        took_over = time.monotonic() - cut
        ids = _insert_events(database_url, fresh_topic, 20)
        wait_until(lambda: _unpublished(database_url) == 0, timeout=30)
        records = read_records(kafka.connection(), fresh_topic, until=20, timeout=30)
        assert {r.header("ce_id") for r in records} >= ids
    finally:
        proxy.close()  # the partitioned instance learns now, and can stop
    assert took_over < 7 + 0.2 + 3, f"took over after {took_over:.1f}s"
