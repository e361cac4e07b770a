"""The one consumer runtime: Kafka records in, database effects out, exactly once per event id.

Both consumer services run this loop with their own handler. A handler turns a record into a
command (`decode`, no I/O: this is where bad JSON, an unknown `ce_type`, missing fields or an
undecryptable PAN show up) and applies the command inside a database transaction (`apply`).
The runtime owns everything else:

- Inbox: `processed_messages` gets (consumer group, `ce_id`) in the same transaction as the
  handler's effects; an event seen before is a duplicate and does nothing. Records are applied
  in batches, one transaction per batch, so one commit (one WAL flush) serves many records.
  The batch first runs on the fast path: one statement claims every event id, then each
  record's effects, with no savepoint. If any record fails, that transaction is rolled back
  and the batch runs again on the careful path, a savepoint and an inbox insert per record,
  so a failing record rolls back only itself.
- Offsets: stored only after the batch's transaction committed and its dead letters are
  confirmed by Kafka; librdkafka commits stored offsets in the background (and at revocation and
  shutdown). A crash at any moment re-delivers at most the batch in hand, which the inbox turns
  into duplicates.
- Failures: a poison record goes to `<topic>_dlq` at once. A record failing for its own
  reasons (a bug, a constraint, a lost optimistic-lock race) is retried `max_attempts` times
  with backoff, then dead-lettered. An outage (PostgreSQL unreachable, the DLQ produce not
  confirmed) is not the record's fault: the assignment is paused and the same records are
  retried with capped backoff until the outage ends, never dead-lettered for it.
- Shutdown: `stop()` (SIGTERM) lets the batch in hand finish, stores its offsets and commits.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prequal.dlq import Failure, dead_letter_headers, dlq_topic
from prequal.events import CloudEventAttributes, InvalidEnvelopeError, parse_headers
from prequal.kafka import EventConsumer, EventProducer, InboundRecord, KafkaUnavailableError
from prequal.metrics import db_query_histogram

log = logging.getLogger(__name__)

C = TypeVar("C")
AfterCommit = Callable[[], None]
"""What a handler wants done once its effects are committed (metrics, logs)."""

INBOX_SQL = (
    "INSERT INTO processed_messages (consumer_group, event_id) VALUES (%s, %s) "
    "ON CONFLICT DO NOTHING"
)
CLAIM_SQL = (
    "INSERT INTO processed_messages (consumer_group, event_id) "
    "SELECT %s, unnest(%s::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id"
)
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OUTCOMES = ("processed", "duplicate", "retried", "dead_lettered")


class PoisonRecordError(Exception):
    """The record can never succeed as it is: it goes to the DLQ at once, without retries."""


class OutageError(Exception):
    """PostgreSQL or Kafka is unreachable: retry the same records later, blame none of them."""


class _StopRequestedError(Exception):
    """Shutdown was asked for while an outage held the batch: leave without storing offsets."""


class Handler(Protocol[C]):
    """A service's part of consuming: decode a record, apply it in a transaction."""

    def decode(self, event: CloudEventAttributes, record: InboundRecord) -> C:
        """The command for a record; raise PoisonRecordError when it can never succeed."""
        ...

    def apply(self, conn: psycopg.Connection[Any], command: C) -> AfterCommit | None:
        """The command's database effects, inside the runtime's transaction."""
        ...


class ConsumerMetrics:
    """The names the dashboards and alerts use (docs/decision-path.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "consumer_consumed_records",
            "Records received from Kafka, each counted once whatever its outcome",
            ["topic", "group"],
            registry=registry,
        )
        self.records = Counter(
            "consumer_records",
            "Consumed records by outcome: processed, duplicate, retried, dead_lettered",
            ["topic", "group", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "consumer_lag",
            "Records on this member's partitions not consumed yet",
            ["topic", "group"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "dlq_records", "Records written to a dead-letter topic", ["topic"], registry=registry
        )
        self.processing = Histogram(
            "consumer_processing_seconds",
            "Time from a record's batch starting to its effects being committed",
            ["topic", "group"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.db_latency = db_query_histogram(registry)

    def start(self, topic: str, group: str) -> None:
        """Exports every series at 0 before the first record, so `increase()` sees the first one."""
        self.consumed.labels(topic, group)
        for outcome in OUTCOMES:
            self.records.labels(topic, group, outcome)
        self.lag.labels(topic, group)
        self.dead_lettered.labels(dlq_topic(topic))
        self.processing.labels(topic, group)
        self.db_latency.labels("consumer_batch")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Exponential from `initial_backoff`, capped: attempt 1 waits initial, 2 twice that…"""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** max(attempt - 1, 0)))


@dataclass
class _Pending(Generic[C]):
    record: InboundRecord
    event_id: uuid.UUID
    command: C
    attempts: int = 0
    error: BaseException | None = None


@dataclass
class DeadLetterWriter:
    """Produces dead letters and waits for Kafka to confirm every one of them."""

    producer: EventProducer
    confirm_timeout: float = 10.0

    def send(self, letters: Sequence[tuple[InboundRecord, Failure]]) -> None:
        errors: list[str] = []

        def _delivered(error: str | None) -> None:
            if error is not None:
                errors.append(error)

        for record, failure in letters:
            self.producer.produce(
                dlq_topic(record.topic),
                key=record.key or b"",
                value=record.value or b"",
                headers=list(dead_letter_headers(record.headers, failure)),
                on_delivery=_delivered,
            )
        undelivered = self.producer.flush(self.confirm_timeout)
        if undelivered or errors:
            self.producer.purge()
            raise OutageError(f"dead letters not confirmed by Kafka: {errors[:1] or undelivered}")


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
    _conn: psycopg.Connection[Any] | None = None
    _revoked: set[tuple[str, int]] = field(default_factory=set)
    _carry: list[InboundRecord] = field(default_factory=list)
    _running: bool = False

    def stop(self) -> None:
        self._stop.set()

    def healthy(self) -> bool:
        """True while the loop runs; an outage is not unhealthy (a restart would not help)."""
        return self._running

    def run(self) -> None:
        self.metrics.start(self.topic, self.group)
        self.consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._lost)
        self._running = True
        next_lag = 0.0
        try:
            while not self._stop.is_set():
                records = self._carry or self.consumer.consume(self.max_batch, self.poll_timeout)
                self._carry = []
                if records:
                    self._process(records)
                if time.monotonic() >= next_lag:
                    self._report_lag()
                    next_lag = time.monotonic() + self.lag_interval
        except _StopRequestedError:
            log.warning("stopping during an outage; unfinished records will be re-delivered")
        finally:
            self._running = False
            self.consumer.close()
            if self._conn is not None:
                self._conn.close()
            log.info("consumer stopped")

    # --- assignment ------------------------------------------------------------------------

    def _assigned(self, partitions: list[tuple[str, int]]) -> None:
        self._revoked.difference_update(partitions)
        log.info("partitions assigned: %s", partitions)

    def _lost(self, partitions: list[tuple[str, int]]) -> None:
        self._revoked.update(partitions)
        log.info("partitions revoked: %s", partitions)

    def _owned(self, record: InboundRecord) -> bool:
        return (record.topic, record.partition) not in self._revoked

    # --- one batch ---------------------------------------------------------------------------

    def _process(self, records: list[InboundRecord]) -> None:
        started = time.perf_counter()
        self.metrics.consumed.labels(self.topic, self.group).inc(len(records))
        dead: list[tuple[InboundRecord, Failure]] = []
        pending = self._decode(records, dead)
        self._apply_until_done(pending, dead, started)
        self._send_dead_letters(dead)
        self.consumer.store_offsets([r for r in records if self._owned(r)])

    def _decode(
        self, records: list[InboundRecord], dead: list[tuple[InboundRecord, Failure]]
    ) -> list[_Pending[C]]:
        pending: list[_Pending[C]] = []
        for record in records:
            try:
                event = parse_headers(record.headers)
                command = self.handler.decode(event, record)
            except (PoisonRecordError, InvalidEnvelopeError) as exc:
                dead.append((record, self._failure(record, exc, attempts=1)))
                continue
            pending.append(_Pending(record, event.id, command))
        return pending

    def _apply_until_done(
        self,
        pending: list[_Pending[C]],
        dead: list[tuple[InboundRecord, Failure]],
        started: float,
    ) -> None:
        outages = 0
        while pending:
            pending = [p for p in pending if self._owned(p.record)]
            if not pending:
                break  # every record left in hand is now another member's
            try:
                failed = self._apply_batch(pending, dead, started)
            except OutageError as exc:
                outages += 1
                self._count(pending, "retried")
                log.warning("outage, retrying %d records later: %s", len(pending), exc)
                self._wait(self.outage_backoff.backoff(outages), give_up_on_stop=True)
                continue
            outages = 0
            pending = []
            for item in failed:
                if item.attempts >= self.retry.max_attempts:
                    assert item.error is not None
                    dead.append(
                        (item.record, self._failure(item.record, item.error, item.attempts))
                    )
                else:
                    pending.append(item)
            if pending:
                self._count(pending, "retried")
                self._wait(self.retry.backoff(max(p.attempts for p in pending)))

    def _apply_batch(
        self,
        pending: list[_Pending[C]],
        dead: list[tuple[InboundRecord, Failure]],
        started: float,
    ) -> list[_Pending[C]]:
        """One committed transaction for the batch; returns the records to try again."""
        after_commit: list[AfterCommit] = []
        failed: list[_Pending[C]] = []
        outcomes = {"processed": 0, "duplicate": 0}
        conn = self._connection()
        transaction_started = time.perf_counter()
        try:
            if not self._apply_fast(conn, pending, outcomes, after_commit):
                self._apply_careful(conn, pending, dead, failed, outcomes, after_commit)
        except (psycopg.OperationalError, psycopg.InterfaceError, KafkaUnavailableError) as exc:
            if not self._is_outage(exc):
                raise
            self._drop_connection()
            raise OutageError(f"{exc.__class__.__name__}: {exc}") from exc
        self.metrics.db_latency.labels("consumer_batch").observe(
            time.perf_counter() - transaction_started
        )
        self._committed(outcomes, time.perf_counter() - started)
        for then in after_commit:
            then()
        return failed

    def _apply_fast(
        self,
        conn: psycopg.Connection[Any],
        pending: list[_Pending[C]],
        outcomes: dict[str, int],
        after_commit: list[AfterCommit],
    ) -> bool:
        """The whole batch with one inbox claim and no savepoints; False if any record failed.

        On False nothing was committed and nothing was counted: the careful path starts over.
        """
        done: dict[str, int] = {"processed": 0, "duplicate": 0}
        then_list: list[AfterCommit] = []
        try:
            with conn.transaction():
                claimed = {
                    row[0]
                    for row in conn.execute(
                        CLAIM_SQL, (self.group, [item.event_id for item in pending])
                    )
                }
                for item in pending:
                    if item.event_id not in claimed:
                        done["duplicate"] += 1  # seen before, or earlier in this batch
                        continue
                    claimed.discard(item.event_id)
                    then = self.handler.apply(conn, item.command)
                    if then is not None:
                        then_list.append(then)
                    done["processed"] += 1
        except Exception as exc:
            if self._is_outage(exc):
                raise
            log.debug("fast path gave way to one savepoint per record: %r", exc)
            return False
        for outcome, count in done.items():
            outcomes[outcome] += count
        after_commit.extend(then_list)
        return True

    def _apply_careful(  # noqa: PLR0917 - the batch's shared accumulators
        self,
        conn: psycopg.Connection[Any],
        pending: list[_Pending[C]],
        dead: list[tuple[InboundRecord, Failure]],
        failed: list[_Pending[C]],
        outcomes: dict[str, int],
        after_commit: list[AfterCommit],
    ) -> None:
        """One transaction, a savepoint per record: a failing record rolls back only itself."""
        blocked_keys: set[bytes | None] = set()
        with conn.transaction():
            for item in pending:
                if item.record.key in blocked_keys:
                    failed.append(item)  # keeps the order of one application's events
                    continue
                outcome = self._apply_one(conn, item, after_commit)
                if outcome == "failed":
                    failed.append(item)
                    blocked_keys.add(item.record.key)
                elif outcome == "poison":
                    assert item.error is not None
                    dead.append((item.record, self._failure(item.record, item.error, 1)))
                else:
                    outcomes[outcome] += 1

    def _apply_one(
        self, conn: psycopg.Connection[Any], item: _Pending[C], after_commit: list[AfterCommit]
    ) -> str:
        """processed | duplicate | poison | failed, in a savepoint of the batch's transaction."""
        try:
            with conn.transaction():
                claimed = conn.execute(INBOX_SQL, (self.group, item.event_id))
                if claimed.rowcount == 0:
                    return "duplicate"
                then = self.handler.apply(conn, item.command)
        except PoisonRecordError as exc:
            item.error = exc
            return "poison"
        except Exception as exc:
            if self._is_outage(exc):
                raise
            item.attempts += 1
            item.error = exc
            log.warning(
                "record failed (attempt %d): %s: %s",
                item.attempts,
                exc.__class__.__name__,
                exc,
                extra=self._ids(item.record, item.event_id),
            )
            return "failed"
        if then is not None:
            after_commit.append(then)
        return "processed"

    def _committed(self, outcomes: dict[str, int], elapsed: float) -> None:
        histogram = self.metrics.processing.labels(self.topic, self.group)
        for _ in range(sum(outcomes.values())):
            histogram.observe(elapsed)
        for outcome, count in outcomes.items():
            if count:
                self.metrics.records.labels(self.topic, self.group, outcome).inc(count)

    def _send_dead_letters(self, dead: list[tuple[InboundRecord, Failure]]) -> None:
        dead = [(record, failure) for record, failure in dead if self._owned(record)]
        if not dead:
            return
        outages = 0
        while True:
            try:
                self.dead_letters.send(dead)
                break
            except (OutageError, KafkaUnavailableError) as exc:
                outages += 1
                log.warning("dead letters not written yet, retrying: %s", exc)
                self._wait(self.outage_backoff.backoff(outages), give_up_on_stop=True)
        self.metrics.dead_lettered.labels(dlq_topic(self.topic)).inc(len(dead))
        self.metrics.records.labels(self.topic, self.group, "dead_lettered").inc(len(dead))
        for record, failure in dead:
            log.warning(
                "dead-lettered %s[%d]@%d after %d attempt(s): %s: %s",
                record.topic,
                record.partition,
                record.offset,
                failure.attempts,
                failure.error_class,
                failure.error_message,
                extra=self._ids(record, None),
            )

    # --- helpers -----------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop_connection()
        try:
            self._conn = self.connect()
        except psycopg.Error as exc:
            raise OutageError(f"cannot connect to PostgreSQL: {exc}") from exc
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                log.debug("closing a broken connection failed", exc_info=True)
            self._conn = None

    def _is_outage(self, exc: BaseException) -> bool:
        """Connection-level trouble; a deadlock or a constraint is the record's own problem."""
        if isinstance(exc, OutageError | KafkaUnavailableError):
            return True
        if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return False
        conn = self._conn
        return conn is None or conn.closed or conn.broken

    def _wait(self, seconds: float, *, give_up_on_stop: bool = False) -> None:
        """Backs off with the assignment paused, still serving rebalances and heartbeats."""
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                if self._stop.is_set():
                    if give_up_on_stop:
                        raise _StopRequestedError
                    return
                self._carry.extend(self.consumer.consume(self.max_batch, min(0.2, remaining)))
        finally:
            self.consumer.resume([tp for tp in assignment if tp not in self._revoked])

    def _report_lag(self) -> None:
        lag = self.consumer.lag().get(self.topic, 0)
        self.metrics.lag.labels(self.topic, self.group).set(lag)

    def _count(self, pending: list[_Pending[C]], outcome: str) -> None:
        self.metrics.records.labels(self.topic, self.group, outcome).inc(len(pending))

    def _failure(self, record: InboundRecord, error: BaseException, attempts: int) -> Failure:
        return Failure.of(
            error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=self.group,
            attempts=attempts,
        )

    @staticmethod
    def _ids(record: InboundRecord, event_id: uuid.UUID | None) -> dict[str, Any]:
        key = record.key.decode("utf-8", "replace") if record.key else None
        return {"application_id": key, "event_id": str(event_id) if event_id else None}
