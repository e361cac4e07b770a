"""Writing dead letters: produced to `<topic>_dlq`, and confirmed by Kafka before anything else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prequal.consumer.handler import OutageError
from prequal.dlq import Failure, dead_letter_headers, dlq_topic
from prequal.kafka import EventProducer, InboundRecord


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
