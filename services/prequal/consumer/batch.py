"""Batch application: one committed transaction applies a batch of records, exactly once each.

The batch first runs on the fast path: one statement claims every event id in the inbox
(`processed_messages`), then each record's effects, with no savepoint (all at once when the
handler is a `BatchHandler`: a few statements for the batch, not a few per record). If any
record fails, that transaction is rolled back and the batch runs again on the careful path, a
savepoint and an inbox insert per record, so a failing record rolls back only itself.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg

from prequal import audit
from prequal.consumer.handler import (
    AfterCommit,
    BatchHandler,
    Handler,
    OutageError,
    PoisonRecordError,
)
from prequal.consumer.metrics import ConsumerMetrics
from prequal.db import outages
from prequal.dlq import Failure
from prequal.kafka import InboundRecord, KafkaUnavailableError

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")
DeadLetters = list[tuple[InboundRecord, Failure]]

INBOX_SQL = (
    "INSERT INTO processed_messages (consumer_group, event_id) VALUES (%s, %s) "
    "ON CONFLICT DO NOTHING"
)
CLAIM_SQL = (
    "INSERT INTO processed_messages (consumer_group, event_id) "
    "SELECT %s, unnest(%s::uuid[]) ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass
class Pending(Generic[C]):
    """A decoded record not applied yet, with its failed attempts so far."""

    record: InboundRecord
    event_id: uuid.UUID
    command: C
    attempts: int = 0
    error: BaseException | None = None


def failure(record: InboundRecord, error: BaseException, attempts: int, group: str) -> Failure:
    return Failure.of(
        error,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer_group=group,
        attempts=attempts,
    )


def record_ids(record: InboundRecord, event_id: uuid.UUID | None) -> dict[str, Any]:
    """The log fields that tie a line to an application and an event."""
    key = record.key.decode("utf-8", "replace") if record.key else None
    return {"application_id": key, "event_id": str(event_id) if event_id else None}


@dataclass
class BatchApplier(Generic[C]):
    """Applies batches with one connection, reconnecting after an outage."""

    topic: str
    group: str
    handler: Handler[C]
    connect: Callable[[], psycopg.Connection[Any]]
    metrics: ConsumerMetrics
    _conn: psycopg.Connection[Any] | None = None

    def apply(
        self, pending: list[Pending[C]], started: float
    ) -> tuple[list[Pending[C]], DeadLetters]:
        """One committed transaction for the batch: the records to try again, and the poison.

        The poison found on the careful path is handed back only once the transaction
        committed: a batch retried after an outage finds it again, and reports it once.
        """
        dead: DeadLetters = []
        after_commit: list[AfterCommit] = []
        failed: list[Pending[C]] = []
        outcomes = {"processed": 0, "duplicate": 0}
        conn = self._connection()
        transaction_started = time.perf_counter()
        try:
            if not self._apply_fast(conn, pending, outcomes, after_commit):
                self._apply_careful(conn, pending, dead, failed, outcomes, after_commit)
        except (psycopg.Error, KafkaUnavailableError) as exc:
            if not self.is_outage(exc):
                raise
            self._drop_connection()
            raise OutageError(f"{exc.__class__.__name__}: {exc}") from exc
        self.metrics.db_latency.labels("consumer_batch").observe(
            time.perf_counter() - transaction_started
        )
        self.metrics.committed(self.topic, self.group, outcomes, time.perf_counter() - started)
        for then in after_commit:
            then()
        return failed, dead

    def within(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`work` in one transaction of this applier's connection; an outage is OutageError."""
        conn = self._connection()
        try:
            with conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            if not self.is_outage(exc):
                raise
            self._drop_connection()
            raise OutageError(f"{exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _apply_fast(
        self,
        conn: psycopg.Connection[Any],
        pending: list[Pending[C]],
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
                commands: list[C] = []
                for item in pending:
                    if item.event_id not in claimed:
                        done["duplicate"] += 1  # seen before, or earlier in this batch
                        continue
                    claimed.discard(item.event_id)
                    commands.append(item.command)
                    done["processed"] += 1
                if isinstance(self.handler, BatchHandler):
                    then_list.extend(self.handler.apply_batch(conn, commands))
                else:
                    for command in commands:
                        then = self.handler.apply(conn, command)
                        if then is not None:
                            then_list.append(then)
        except Exception as exc:
            if self.is_outage(exc):
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
        pending: list[Pending[C]],
        dead: DeadLetters,
        failed: list[Pending[C]],
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
                    dead.append((item.record, failure(item.record, item.error, 1, self.group)))
                else:
                    outcomes[outcome] += 1

    def _apply_one(
        self, conn: psycopg.Connection[Any], item: Pending[C], after_commit: list[AfterCommit]
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
            if exc.audit is not None:
                conn.execute(audit.INSERT_SQL, exc.audit.params())
            return "poison"
        except Exception as exc:
            if self.is_outage(exc):
                raise
            item.attempts += 1
            item.error = exc
            log.warning(
                "record failed (attempt %d): %s: %s",
                item.attempts,
                exc.__class__.__name__,
                exc,
                extra=record_ids(item.record, item.event_id),
            )
            return "failed"
        if then is not None:
            after_commit.append(then)
        return "processed"

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

    def is_outage(self, exc: BaseException) -> bool:
        """An outage blames no record (prequal.db.outages); a constraint is the record's own."""
        return isinstance(exc, OutageError | KafkaUnavailableError) or outages.is_outage(exc)
