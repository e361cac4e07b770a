"""The publisher process's loop: lane leases, wake-ups, and parallel workers over its lanes.

Ordering only has to hold within a lane (all events of one application share one), so an
instance splits its lanes among `OUTBOX_WORKERS` threads, each with its own connection and
batches: one worker's database work overlaps another's wait for Kafka. The main thread keeps
the lane leases (and LISTENs on the same connection); a NOTIFY wakes only the workers of the
lanes it names (outbox_publisher.wakeups). Each worker has its own idempotent
producer, so a batch's flush waits for that batch only. Lanes are only released while no batch
is in flight, and at stop only once every worker has finished its batch.

A worker survives what a worker can meet: a database outage (it reconnects), and any other
failure of a batch, a fatal producer error after a broker restart included (it rolls the batch
back, replaces its producer and connection, and goes on). Should a worker end all the same, the
process stops and reports itself unhealthy, so its lanes move to another instance instead of
staying held by a process that no longer publishes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from outbox_publisher import store
from outbox_publisher.batches import BatchResult, publish_batch
from outbox_publisher.breaker import CircuitBreaker
from outbox_publisher.lanes import LaneLeases
from outbox_publisher.metrics import PublisherMetrics
from outbox_publisher.settings import PublisherSettings
from outbox_publisher.wakeups import workers_to_wake
from prequal.db import outages
from prequal.kafka import EventProducer
from prequal.outbox import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]
ProducerFactory = Callable[[int], EventProducer]
_RECONNECT_DELAY = 1.0


class Publisher:
    def __init__(
        self,
        settings: PublisherSettings,
        connect: Connect,
        producers: ProducerFactory,
        metrics: PublisherMetrics,
    ) -> None:
        self.settings = settings
        self.connect = connect
        self.producers = producers
        self.metrics = metrics
        self.stopping = threading.Event()
        self._breaker = CircuitBreaker(max_delay=settings.outbox_backoff_max_seconds)
        self._breaker_lock = threading.Lock()
        # Guards `_owned` and `_busy`: lanes are released only when no batch is in flight.
        self._lanes = threading.Condition()
        self._owned: frozenset[int] = frozenset()
        self._busy = 0
        self._wake = [threading.Event() for _ in range(settings.outbox_workers)]
        self._threads: list[threading.Thread] = []
        self.failed = False

    def stop(self) -> None:
        self.stopping.set()
        for event in self._wake:
            event.set()

    def healthy(self) -> bool:
        """False once stopping or once a worker ended: a restart would move its lanes."""
        return not self.stopping.is_set() and all(t.is_alive() for t in self._threads)

    # -- the main thread: leases and wake-ups ---------------------------------------------

    def run(self) -> None:
        """Publishes until stop(); survives database and Kafka outages."""
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"worker-{i}", daemon=True)
            for i in range(self.settings.outbox_workers)
        ]
        for thread in self._threads:
            thread.start()
        while not self.stopping.is_set():
            try:
                self._hold_leases()
            except psycopg.Error as exc:
                if not outages.is_outage(exc):
                    raise
                log.warning("lease connection lost (%s); reconnecting", type(exc).__name__)
                self._set_owned(frozenset())
                self.stopping.wait(_RECONNECT_DELAY)
        self._join_workers()
        log.info("stopped; unconfirmed batches stay in the outbox")

    def _hold_leases(self) -> None:
        with self.connect() as conn:
            conn.autocommit = True
            # Ended by the server when silent: a partitioned instance's locks do not outlive it.
            idle_ms = int(self.settings.outbox_lease_idle_timeout_seconds * 1000)
            conn.execute(f"SET idle_session_timeout = {idle_ms}")
            leases = LaneLeases(conn)
            if self.settings.outbox_listen:
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            next_rebalance = next_purge = 0.0
            while not self.stopping.is_set():
                now = time.monotonic()
                if now >= next_rebalance:
                    self._rebalance(leases)
                    next_rebalance = now + self.settings.outbox_rebalance_interval_seconds
                if now >= next_purge and not self.settings.outbox_delete_published:
                    self._purge(conn)
                    next_purge = now + 60.0
                self._wait_for_notify(conn, next_rebalance - time.monotonic())
            # The locks go with this connection: not before the in-flight batches are settled,
            # or another instance could publish a lane's later rows before them.
            self._join_workers()
        self._set_owned(frozenset())

    def _rebalance(self, leases: LaneLeases) -> None:
        with self._lanes:
            # Releasing a lane mid-batch could let another instance overtake that batch.
            while self._busy:
                self._lanes.wait()
            self._owned = frozenset(leases.rebalance())
        self.metrics.lanes_owned.set(len(self._owned))

    def _join_workers(self) -> None:
        for thread in self._threads:
            thread.join()

    def _set_owned(self, lanes: frozenset[int]) -> None:
        with self._lanes:
            self._owned = lanes
        self.metrics.lanes_owned.set(len(lanes))

    def _wait_for_notify(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        if not self.settings.outbox_listen:
            self.stopping.wait(max(timeout, 0.0))
            return
        for notify in conn.notifies(timeout=max(min(timeout, 0.25), 0.0), stop_after=1):
            for index in workers_to_wake(notify.payload, len(self._wake)):
                self._wake[index].set()

    def _purge(self, conn: psycopg.Connection[Any]) -> None:
        purged = store.purge_published(conn, self.settings.outbox_retention_seconds)
        if purged:
            log.info("purged %d published outbox rows", purged)

    # -- worker threads -------------------------------------------------------------------

    def _work(self, index: int) -> None:
        try:
            self._work_until_stopped(index)
        except BaseException:
            log.exception("worker %d ended; stopping so that its lanes move elsewhere", index)
            self.failed = True
            self.stop()

    def _work_until_stopped(self, index: int) -> None:
        conn: psycopg.Connection[Any] | None = None
        producer = self.producers(index)
        try:
            while not self.stopping.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = self.connect()
                        conn.autocommit = True  # one explicit transaction per batch
                    began = time.monotonic()
                    full = self._one_batch(conn, producer, index)
                except Exception as exc:  # noqa: BLE001 - every failure of a batch is survived
                    if conn is not None:
                        conn.close()
                    conn = None
                    producer = self._survive(exc, producer, index)
                    self.stopping.wait(_RECONNECT_DELAY)
                    continue
                self._idle(index, full=full, began=began)
        finally:
            if conn is not None:
                conn.close()
        producer.flush(self.settings.outbox_delivery_timeout_seconds)

    def _idle(self, index: int, *, full: bool, began: float) -> None:
        """Waits for the next batch's rows: a NOTIFY, the poll interval, or none when full.

        Woken sooner than `OUTBOX_GATHER_SECONDS` after the last batch began, a worker waits out
        the rest of it before it claims, so that under load one claim and one produce request
        carry the submissions of that whole interval; the wake-up stays set meanwhile, and it is
        cleared only just before the claim, which then takes every row those NOTIFYs announced.
        An idle publisher's first event waits for nothing.
        """
        if not self.settings.outbox_listen:
            self.stopping.wait(self.settings.outbox_poll_interval_seconds)
        elif not full:
            self._wake[index].wait(self.settings.outbox_poll_interval_seconds)
            rest = self.settings.outbox_gather_seconds - (time.monotonic() - began)
            if rest > 0:
                self.stopping.wait(rest)
            self._wake[index].clear()

    def _survive(self, exc: Exception, producer: EventProducer, index: int) -> EventProducer:
        """The producer to go on with after a failed batch (rolled back with its connection)."""
        if isinstance(exc, psycopg.Error) and outages.is_outage(exc):
            log.warning("worker %d: database unavailable (%s)", index, type(exc).__name__)
            return producer
        log.error(
            "worker %d: batch failed (%s: %s); rolled back, replacing its producer",
            index,
            type(exc).__name__,
            exc,
        )
        return self._replace(producer, index)

    def _replace(self, producer: EventProducer, index: int) -> EventProducer:
        """A new producer: after a fatal error the old one never sends again."""
        try:
            producer.purge()  # what it still holds belongs to a rolled-back batch
        except Exception:  # a fatal producer may refuse even this
            log.debug("purging the old producer failed", exc_info=True)
        self.metrics.producer_replacements.inc()
        return self.producers(index)

    def _one_batch(
        self, conn: psycopg.Connection[Any], producer: EventProducer, index: int
    ) -> bool:
        """Publishes one batch of this worker's lanes; True when it was full (more waiting)."""
        if not self._breaker_allows(producer):
            return False
        with self._lanes:
            lanes = sorted(
                lane for lane in self._owned if lane % self.settings.outbox_workers == index
            )
            if not lanes:
                return False
            self._busy += 1
        try:
            result = publish_batch(conn, producer, self.settings, lanes)
        finally:
            with self._lanes:
                self._busy -= 1
                self._lanes.notify_all()
        if result.claimed:
            self._account(result)
        return result.claimed >= self.settings.outbox_batch_size and result.committed

    def _breaker_allows(self, producer: EventProducer) -> bool:
        with self._breaker_lock:
            now = time.monotonic()
            if not self._breaker.allows(now):
                wait = self._breaker.remaining(now)
            elif self._breaker.is_open and not producer.reachable():
                wait = self._breaker.record_failure(now)
            else:
                return True
        self.stopping.wait(min(wait, 1.0))
        return False

    def _account(self, result: BatchResult) -> None:
        if result.committed:
            for topic, count in result.per_topic().items():
                self.metrics.published.labels(topic).inc(count)
            self.metrics.batch_seconds.observe(result.seconds)
            with self._breaker_lock:
                if self._breaker.is_open:
                    log.info("kafka confirms again; circuit closed")
                    self._breaker.record_success()
            self.metrics.circuit_open.set(0)
            return
        for topic, count in result.per_topic().items():
            self.metrics.errors.labels(topic).inc(count)
        with self._breaker_lock:
            delay = self._breaker.record_failure(time.monotonic())
        self.metrics.circuit_open.set(1)
        deliveries = result.deliveries
        assert deliveries is not None
        first = result.records[0]
        log.warning(
            "batch of %d not confirmed (%d failed, %d outstanding; first error: %s); "
            "rolled back, retrying in %.1fs",
            result.claimed,
            deliveries.failed,
            deliveries.unconfirmed,
            deliveries.first_error,
            delay,
            extra={"event_id": first.id.decode(), "application_id": first.aggregate_id.decode()},
        )
