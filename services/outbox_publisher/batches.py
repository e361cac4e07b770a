"""One batch: claim rows, produce them as CloudEvents records, commit only when all confirmed.

The batch's transaction holds its rows while their records are in flight. It commits (deleting
or marking the rows) only after Kafka confirmed every record; otherwise it rolls back and the
rows are sent again later. Records that did arrive then arrive twice with the same `ce_id`,
which consumers dedupe on; nothing is lost, and within a lane nothing overtakes its elders.
Records are produced without a flush each: the idempotent producer batches them, and one
flush per batch sends the tail at once and waits for the acknowledgements.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import psycopg

from outbox_publisher import store
from outbox_publisher.settings import PublisherSettings
from prequal import events
from prequal.kafka import EventProducer

KafkaRecord = tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]]]

_STATIC_HEADERS = {
    event_type: [
        ("ce_specversion", events.SPEC_VERSION.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("content-type", events.CONTENT_TYPE.encode()),
    ]
    for event_type, source in events.SOURCES.items()
}


def as_kafka_record(record: store.OutboxRecord) -> KafkaRecord:
    """Key = application id; CloudEvents binary-mode headers; the stored JSON as the value."""
    static = _STATIC_HEADERS.get(record.event_type) or [
        ("ce_specversion", events.SPEC_VERSION.encode()),
        ("ce_type", record.event_type.encode()),
        ("ce_source", b"/prequal"),
        ("content-type", events.CONTENT_TYPE.encode()),
    ]
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_id", record.id),
        ("ce_time", record.ce_time),
        *static,
    ]
    return record.topic, record.aggregate_id, record.payload, headers


@dataclass
class Deliveries:
    """What Kafka reported for one batch.

    The worker's producer reports only failures (`delivery.report.only.error`): a batch is
    confirmed when its flush left nothing outstanding and no record failed. That spares a
    Python callback per successful record, the largest cost after building the records.
    """

    size: int
    failed: int = 0
    unconfirmed: int = 0
    first_error: str | None = None

    def __call__(self, error: str | None) -> None:
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or error

    @property
    def all_confirmed(self) -> bool:
        return self.failed == 0 and self.unconfirmed == 0


@dataclass(frozen=True)
class BatchResult:
    records: list[store.OutboxRecord]
    deliveries: Deliveries | None
    seconds: float

    @property
    def claimed(self) -> int:
        return len(self.records)

    @property
    def committed(self) -> bool:
        return self.deliveries is None or self.deliveries.all_confirmed

    def per_topic(self) -> Counter[str]:
        return Counter(r.topic for r in self.records)


class _NotConfirmedError(Exception):
    """Raised inside the batch's transaction to roll it back."""


def publish_batch(
    conn: psycopg.Connection[object],
    producer: EventProducer,
    settings: PublisherSettings,
    lanes: list[int],
) -> BatchResult:
    """Claims up to a batch of the lanes' oldest rows and publishes them (see module doc)."""
    started = time.perf_counter()
    delete = settings.outbox_delete_published
    deliveries: Deliveries | None = None
    records: list[store.OutboxRecord] = []
    try:
        with conn.transaction():
            records = store.claim(conn, lanes, settings.outbox_batch_size, delete=delete)
            if not records:
                return BatchResult([], None, time.perf_counter() - started)
            deliveries = _produce(producer, settings, records)
            if not deliveries.all_confirmed:
                raise _NotConfirmedError
            if not delete:
                store.mark_published(conn, [r.id for r in records])
    except _NotConfirmedError:
        pass
    return BatchResult(records, deliveries, time.perf_counter() - started)


def _produce(
    producer: EventProducer, settings: PublisherSettings, records: list[store.OutboxRecord]
) -> Deliveries:
    deliveries = Deliveries(len(records))
    timeout = settings.outbox_delivery_timeout_seconds
    if settings.outbox_flush_per_record:
        for record in records:
            producer.produce_batch([as_kafka_record(record)], deliveries)
            deliveries.unconfirmed = producer.flush(timeout)
    else:
        producer.produce_batch(map(as_kafka_record, records), deliveries)
    # One flush per batch: it sends at once (no linger) and returns when every record is
    # acknowledged or has failed (by message.timeout.ms at the latest); the margin covers a
    # producer that is itself stuck.
    deliveries.unconfirmed = producer.flush(timeout + 5.0)
    return deliveries
