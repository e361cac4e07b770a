"""The publishing loop: claim a batch, produce it, mark what Kafka confirmed, commit.

One transaction per batch holds the claimed rows (FOR UPDATE SKIP LOCKED) while their records
are in flight; rows are marked published only for records whose delivery callback reported
success, so a crash at any point leaves unconfirmed rows to be sent again (same `ce_id`).
Records are produced without flushing each one: the idempotent producer batches them with
linger.ms, and the loop waits once per batch for the callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from outbox_publisher import store
from outbox_publisher.breaker import CircuitBreaker
from outbox_publisher.lanes import LaneLeases
from outbox_publisher.settings import PublisherSettings
from prequal import events
from prequal.kafka import EventProducer
from prequal.outbox import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class PublisherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "prequal_outbox_published_records",
            "Outbox records Kafka confirmed",
            ["topic"],
            registry=registry,
        )
        self.errors = Counter(
            "prequal_outbox_publish_errors",
            "Outbox records Kafka did not confirm (they stay in the outbox)",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "prequal_outbox_batch_duration_seconds",
            "Claim, produce, confirm and mark one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30),
            registry=registry,
        )
        self.circuit_open = Gauge(
            "prequal_outbox_circuit_open", "1 while publishing is backing off", registry=registry
        )
        self.lanes_owned = Gauge(
            "prequal_outbox_lanes_owned", "Outbox lanes this instance publishes", registry=registry
        )


_NO_REPORT = "no delivery report"


@dataclass
class _Deliveries:
    """Outcome per record of one batch, filled in by the producer's delivery callbacks."""

    size: int
    errors: list[str | None] = field(default_factory=list)
    done: int = 0

    def __post_init__(self) -> None:
        # Until its callback says otherwise, a record counts as failed.
        self.errors = [_NO_REPORT] * self.size

    def callback(self, index: int) -> Callable[[str | None], None]:
        def delivered(error: str | None) -> None:
            self.errors[index] = error
            self.done += 1

        return delivered


Connect = Callable[[], psycopg.Connection[Any]]


class Publisher:
    def __init__(
        self,
        settings: PublisherSettings,
        connect: Connect,
        producer: EventProducer,
        metrics: PublisherMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.producer = producer
        self.metrics = metrics
        self.clock = clock
        self.breaker = CircuitBreaker(max_delay=settings.outbox_backoff_max_seconds)
        self.stopping = threading.Event()
        self._work: psycopg.Connection[Any] | None = None
        self._lease_conn: psycopg.Connection[Any] | None = None
        self._leases: LaneLeases | None = None
        self._next_rebalance = 0.0
        self._next_purge = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Publishes until stop(); survives database and Kafka outages."""
        while not self.stopping.is_set():
            try:
                self._ensure_connected()
                self._step()
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); reconnecting", type(exc).__name__)
                self._disconnect()
                self.stopping.wait(1.0)
        self._disconnect()
        remaining = self.producer.flush(self.settings.outbox_delivery_timeout_seconds)
        log.info("stopped; %d records unconfirmed at exit stay in the outbox", remaining)

    def _ensure_connected(self) -> None:
        if self._work is None or self._work.closed:
            self._work = self.connect()
            self._work.autocommit = True  # transactions are explicit, one per batch
        if self._lease_conn is None or self._lease_conn.closed or self._leases is None:
            conn = self.connect()
            conn.autocommit = True
            if self.settings.outbox_listen:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._lease_conn = conn
            self._leases = LaneLeases(conn)
            self._next_rebalance = 0.0

    def _disconnect(self) -> None:
        for conn in (self._work, self._lease_conn):
            if conn is not None and not conn.closed:
                conn.close()
        self._work = self._lease_conn = self._leases = None
        self.metrics.lanes_owned.set(0)

    # -- one iteration --------------------------------------------------------------------

    def _step(self) -> None:
        assert self._leases is not None
        now = self.clock()
        if now >= self._next_rebalance:
            self.metrics.lanes_owned.set(len(self._leases.rebalance()))
            self._next_rebalance = now + self.settings.outbox_rebalance_interval_seconds
        if now >= self._next_purge:
            self._purge()
            self._next_purge = now + 60.0

        if not self.breaker.allows(now):
            self.stopping.wait(min(self.breaker.remaining(now), 1.0))
            return
        if self.breaker.is_open and not self.producer.reachable():
            self.breaker.record_failure(self.clock())
            return

        claimed = self.publish_batch(sorted(self._leases.owned))
        full = claimed >= self.settings.outbox_batch_size
        if not self.settings.outbox_listen:
            self.stopping.wait(self.settings.outbox_poll_interval_seconds)
        elif not full:
            self._wait_for_notify(self.settings.outbox_poll_interval_seconds)

    def publish_batch(self, lanes: list[int]) -> int:
        """Claims, produces and marks one batch; returns how many rows it claimed."""
        if not lanes:
            return 0
        assert self._work is not None
        started = time.perf_counter()
        with self._work.transaction():
            records = store.claim(self._work, lanes, self.settings.outbox_batch_size)
            if not records:
                return 0
            deliveries = self._produce(records)
            confirmed = [r.id for r, err in zip(records, deliveries.errors, strict=True) if not err]
            store.mark_published(self._work, confirmed)
        self._account(records, deliveries)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return len(records)

    def _produce(self, records: list[store.OutboxRecord]) -> _Deliveries:
        deliveries = _Deliveries(len(records))
        timeout = self.settings.outbox_delivery_timeout_seconds
        per_record = self.settings.outbox_flush_per_record
        for index, record in enumerate(records):
            self.producer.produce(
                record.topic,
                key=str(record.aggregate_id).encode(),
                value=record.payload.encode(),
                headers=events.binary_headers(record.id, record.event_type, record.created_at),
                on_delivery=deliveries.callback(index),
            )
            if per_record:
                self.producer.flush(timeout)
        # Every record has a callback by message.timeout.ms at the latest; the margin covers
        # a producer that is itself stuck.
        deadline = time.monotonic() + timeout + 5.0
        while deliveries.done < deliveries.size and time.monotonic() < deadline:
            self.producer.poll(0.05)
        if deliveries.done < deliveries.size:
            log.error("%d records got no delivery report", deliveries.size - deliveries.done)
        return deliveries

    def _account(self, records: list[store.OutboxRecord], deliveries: _Deliveries) -> None:
        failed = [(r, e) for r, e in zip(records, deliveries.errors, strict=True) if e]
        for record, error in zip(records, deliveries.errors, strict=True):
            (self.metrics.errors if error else self.metrics.published).labels(record.topic).inc()
        if failed:
            record, error = failed[0]
            delay = self.breaker.record_failure(self.clock())
            log.warning(
                "%d of %d records not confirmed (first: %s); backing off %.1fs",
                len(failed),
                len(records),
                error,
                delay,
                extra={"event_id": str(record.id), "application_id": str(record.aggregate_id)},
            )
        elif self.breaker.is_open:
            log.info("kafka confirms again; circuit closed")
            self.breaker.record_success()
        self.metrics.circuit_open.set(1 if self.breaker.is_open else 0)

    def _wait_for_notify(self, timeout: float) -> None:
        assert self._lease_conn is not None
        deadline = self.clock() + timeout
        while not self.stopping.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            # Short slices keep SIGTERM responsive; any notification ends the wait.
            for _ in self._lease_conn.notifies(timeout=min(remaining, 0.25), stop_after=1):
                return

    def _purge(self) -> None:
        assert self._work is not None
        with self._work.transaction():
            purged = store.purge_published(self._work, self.settings.outbox_retention_seconds)
        if purged:
            log.info("purged %d published outbox rows", purged)
