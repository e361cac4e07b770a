"""Dead letters: produced to `<topic>_dlq`, confirmed by Kafka, and recorded in PostgreSQL.

At most one dead letter per event id and consumer group: the writer re-sends only what Kafka
did not confirm, and `dead_letters` (migration 0004) remembers every dead letter written, so a
record seen again (its batch retried, its offsets lost in a crash) is settled without a second
one. The row is written after Kafka confirmed the record: a crash between the two is the one
moment that can still write a dead letter twice, never one that loses it. The same step
records the reason on the application (`processing_issue`), where it outlives the topic's
retention.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from prequal.dlq import REPLAYED_FROM, Failure, dead_letter_headers, dlq_topic
from prequal.kafka import EventProducer, InboundRecord

log = logging.getLogger(__name__)

Letter = tuple[InboundRecord, Failure]

_RECORDED_SQL = (
    "SELECT event_id, replay_of FROM dead_letters "
    "WHERE consumer_group = %s AND event_id = ANY(%s::uuid[])"
)
_RECORD_SQL = (
    "INSERT INTO dead_letters (consumer_group, event_id, replay_of, application_id, error_class) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_ISSUE_SQL = (
    "UPDATE applications SET processing_issue_code = %s, processing_issue_message = %s, "
    "processing_issue_since = now() WHERE id = %s AND status = 'PENDING'"
)


@dataclass
class DeadLetterWriter:
    """Produces dead letters and waits for Kafka to confirm them."""

    producer: EventProducer
    confirm_timeout: float = 10.0

    def send(self, letters: Sequence[Letter]) -> list[Letter]:
        """Sends `letters`; returns those Kafka did not confirm, to be sent again later."""
        confirmed: set[int] = set()

        def _delivered_to(index: int) -> Any:
            def _delivered(error: str | None) -> None:
                if error is None:
                    confirmed.add(index)
                else:
                    log.warning("dead letter not confirmed: %s", error)

            return _delivered

        for index, (record, failure) in enumerate(letters):
            self.producer.produce(
                dlq_topic(record.topic),
                key=record.key or b"",
                value=record.value or b"",
                headers=list(dead_letter_headers(record.headers, failure)),
                on_delivery=_delivered_to(index),
            )
        self.producer.flush(self.confirm_timeout)
        unconfirmed = [letter for i, letter in enumerate(letters) if i not in confirmed]
        if unconfirmed:
            self.producer.purge()
        return unconfirmed


def event_id(record: InboundRecord) -> uuid.UUID | None:
    """The record's `ce_id`, or None when its envelope is too broken to have one."""
    try:
        return uuid.UUID(record.header("ce_id") or "")
    except ValueError:
        return None


def _application_id(record: InboundRecord) -> uuid.UUID | None:
    try:
        return uuid.UUID((record.key or b"").decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def _replay_of(record: InboundRecord) -> str:
    return record.header(REPLAYED_FROM) or ""


def already_written(
    conn: psycopg.Connection[Any], group: str, letters: Sequence[Letter]
) -> list[Letter]:
    """The letters this group already wrote once (same event id, same replay)."""
    ids = [i for record, _ in letters if (i := event_id(record)) is not None]
    if not ids:
        return []
    seen = {(row[0], row[1]) for row in conn.execute(_RECORDED_SQL, (group, ids))}
    return [
        (record, failure)
        for record, failure in letters
        if (event_id(record), _replay_of(record)) in seen
    ]


def record_written(conn: psycopg.Connection[Any], group: str, letters: Sequence[Letter]) -> None:
    """Remembers letters Kafka confirmed, and puts their reason on their applications."""
    for record, failure in letters:
        application = _application_id(record)
        identity = event_id(record)
        if identity is not None:
            conn.execute(
                _RECORD_SQL,
                (group, identity, _replay_of(record), application, failure.error_class),
            )
        if application is not None:
            message = (
                f"{group} could not process {record.topic} after {failure.attempts} "
                f"attempt(s): {failure.error_message}"
            )
            conn.execute(_ISSUE_SQL, (failure.error_class, message, application))
