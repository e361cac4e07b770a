"""The consumer loop: records in from Kafka, batches applied, dead letters sent, offsets stored."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg

from prequal.consumer import dead_letters
from prequal.consumer.batch import BatchApplier, DeadLetters, Pending, failure, record_ids
from prequal.consumer.dead_letters import DeadLetterWriter
from prequal.consumer.handler import Handler, OutageError, PoisonRecordError
from prequal.consumer.metrics import ConsumerMetrics
from prequal.consumer.offsets import Ownership, settled_prefix
from prequal.consumer.retry import PausedWait, RetryPolicy, StopRequestedError
from prequal.dlq import dlq_topic
from prequal.events import InvalidEnvelopeError, parse_headers
from prequal.kafka import EventConsumer, InboundRecord, KafkaUnavailableError

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")


@dataclass
class ConsumerRuntime(Generic[C]):
    """Runs one handler over one topic for one consumer group until `stop()`."""

    topic: str
    group: str
    consumer: EventConsumer
    handler: Handler[C]
    dead_letters: DeadLetterWriter
    connect: Callable[[], psycopg.Connection[Any]]
    metrics: ConsumerMetrics
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_batch: int = 500
    poll_timeout: float = 0.2
    outage_backoff: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(initial_backoff=0.5, max_backoff=5.0)
    )
    lag_interval: float = 5.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ownership: Ownership = field(default_factory=Ownership)
    _running: bool = False

    def __post_init__(self) -> None:
        self._batches = BatchApplier(
            self.topic, self.group, self.handler, self.connect, self.metrics
        )
        self._wait = PausedWait(self.consumer, self._ownership, self._stop, self.max_batch)

    def stop(self) -> None:
        self._stop.set()

    def healthy(self) -> bool:
        """True while the loop runs; an outage is not unhealthy (a restart would not help)."""
        return self._running

    def run(self) -> None:
        self.metrics.start(self.topic, self.group)
        self.consumer.subscribe(
            [self.topic], on_assign=self._ownership.assigned, on_revoke=self._ownership.lost
        )
        self._running = True
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                records = self._wait.take_carried() or self.consumer.consume(
                    self.max_batch, self.poll_timeout
                )
                if records:
                    self._process(records)
                if time.monotonic() >= next_lag:
                    self._report_lag()
                    next_lag = time.monotonic() + self.lag_interval
        except StopRequestedError:
            log.warning("stopped during a wait; unfinished records stay for the next owner")
        finally:
            self._running = False
            self.consumer.close()
            self._batches.close()
            log.info("consumer stopped")

    # --- one batch ---------------------------------------------------------------------------

    def _process(self, records: list[InboundRecord]) -> None:
        """Applies a batch; stores offsets for its settled prefix, also when stopped midway."""
        started = time.perf_counter()
        self.metrics.consumed.labels(self.topic, self.group).inc(len(records))
        settled: list[InboundRecord] = []
        try:
            dead: DeadLetters = []
            pending = self._decode(records, dead)
            self._apply_until_done(pending, dead, settled, started)
            self._send_dead_letters(dead, settled)
        finally:
            prefix = settled_prefix(records, settled)
            self.consumer.store_offsets([r for r in prefix if self._ownership.owns(r)])

    def _decode(self, records: list[InboundRecord], dead: DeadLetters) -> list[Pending[C]]:
        pending: list[Pending[C]] = []
        for record in records:
            try:
                event = parse_headers(record.headers)
                command = self.handler.decode(event, record)
            except (PoisonRecordError, InvalidEnvelopeError) as exc:
                dead.append((record, failure(record, exc, 1, self.group)))
                continue
            pending.append(Pending(record, event.id, command))
        return pending

    def _apply_until_done(
        self,
        pending: list[Pending[C]],
        dead: DeadLetters,
        settled: list[InboundRecord],
        started: float,
    ) -> None:
        """Applies until every record is settled, dead, or another member's.

        A stop during any wait (an outage or a retry backoff) leaves the records in hand
        unsettled: their offsets are not stored and the next owner starts them afresh,
        instead of retrying them here without the backoff and dead-lettering them.
        """
        outages = 0
        while pending:
            pending = [p for p in pending if self._ownership.owns(p.record)]
            if not pending:
                break  # every record left in hand is now another member's
            try:
                failed, poison = self._batches.apply(pending, started)
            except OutageError as exc:
                outages += 1
                self._count(pending, "retried")
                log.warning("outage, retrying %d records later: %s", len(pending), exc)
                self._wait(self.outage_backoff.backoff(outages), give_up_on_stop=True)
                continue
            outages = 0
            dead.extend(poison)
            unsettled = {id(item.record) for item in failed} | {id(r) for r, _ in poison}
            settled.extend(p.record for p in pending if id(p.record) not in unsettled)
            pending = []
            for item in failed:
                if item.attempts >= self.retry.max_attempts:
                    assert item.error is not None
                    dead.append(
                        (item.record, failure(item.record, item.error, item.attempts, self.group))
                    )
                else:
                    pending.append(item)
            if pending:
                self._count(pending, "retried")
                self._wait(
                    self.retry.backoff(max(p.attempts for p in pending)), give_up_on_stop=True
                )

    def _send_dead_letters(self, dead: DeadLetters, settled: list[InboundRecord]) -> None:
        """Writes each dead letter once (see dead_letters), then counts its record settled."""
        dead = [(record, failed) for record, failed in dead if self._ownership.owns(record)]
        if not dead:
            return
        repeated = self._until_done(
            lambda: self._batches.within(
                lambda conn: dead_letters.already_written(conn, self.group, dead)
            )
        )
        for record, _ in repeated:
            log.info(
                "dead letter already written for %s[%d]@%d; not again",
                record.topic,
                record.partition,
                record.offset,
                extra=record_ids(record, dead_letters.event_id(record)),
            )
        repeats = {id(record) for record, _ in repeated}
        fresh = [(record, failed) for record, failed in dead if id(record) not in repeats]
        unsent = fresh
        outages = 0
        while unsent:
            unsent = self.dead_letters.send(unsent)
            if unsent:
                outages += 1
                log.warning("%d dead letter(s) not confirmed by Kafka, retrying", len(unsent))
                self._wait(self.outage_backoff.backoff(outages), give_up_on_stop=True)
        self._until_done(
            lambda: self._batches.within(
                lambda conn: dead_letters.record_written(conn, self.group, fresh)
            )
        )
        settled.extend(record for record, _ in dead)
        self.metrics.dead_lettered.labels(dlq_topic(self.topic)).inc(len(fresh))
        self.metrics.records.labels(self.topic, self.group, "dead_lettered").inc(len(fresh))
        for record, failed in fresh:
            log.warning(
                "dead-lettered %s[%d]@%d after %d attempt(s): %s: %s",
                record.topic,
                record.partition,
                record.offset,
                failed.attempts,
                failed.error_class,
                failed.error_message,
                extra=record_ids(record, None),
            )

    def _until_done(self, step: Callable[[], T]) -> T:
        """`step()`, retried with the outage backoff while the database is unavailable."""
        outages = 0
        while True:
            try:
                return step()
            except (OutageError, KafkaUnavailableError) as exc:
                outages += 1
                log.warning("dead letters waiting for the database: %s", exc)
                self._wait(self.outage_backoff.backoff(outages), give_up_on_stop=True)

    # --- helpers -----------------------------------------------------------------------------

    def _report_lag(self) -> None:
        lag = self.consumer.lag().get(self.topic, 0)
        self.metrics.lag.labels(self.topic, self.group).set(lag)

    def _count(self, pending: list[Pending[C]], outcome: str) -> None:
        self.metrics.records.labels(self.topic, self.group, outcome).inc(len(pending))
