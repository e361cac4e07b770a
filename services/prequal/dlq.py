"""Dead-letter records: what the consumers write to `<topic>_dlq` and what `prequalctl dlq` reads.

A dead-lettered record keeps the original key, value and CloudEvents headers, so a replay to
the original topic is the same event (same `ce_id`: if it was in fact processed meanwhile, the
inbox turns the replay into a duplicate). The `dlq_*` headers say where it came from and why it
failed; the error text passes the PAN redaction of the logs and is bounded in length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from prequal.logging import redact

DLQ_SUFFIX = "_dlq"
ORIGINAL_TOPIC = "dlq_original_topic"
ORIGINAL_PARTITION = "dlq_original_partition"
ORIGINAL_OFFSET = "dlq_original_offset"
CONSUMER_GROUP = "dlq_consumer_group"
ATTEMPTS = "dlq_attempts"
ERROR_CLASS = "dlq_error_class"
ERROR_MESSAGE = "dlq_error_message"
FAILED_AT = "dlq_failed_at"
REPLAYED_FROM = "dlq_replayed_from"
DLQ_HEADERS = (
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    CONSUMER_GROUP,
    ATTEMPTS,
    ERROR_CLASS,
    ERROR_MESSAGE,
    FAILED_AT,
)
MAX_ERROR_CHARS = 1_000

Headers = list[tuple[str, bytes | None]]


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def safe_error_text(error: BaseException) -> str:
    """The error's message, PAN-redacted and bounded: it travels in a header and into logs."""
    text = redact(str(error)) or error.__class__.__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class Failure:
    """Why and where a record failed, as the DLQ headers carry it."""

    topic: str
    partition: int
    offset: int
    consumer_group: str
    attempts: int
    error_class: str
    error_message: str

    @classmethod
    def of(
        cls,
        error: BaseException,
        *,
        topic: str,
        partition: int,
        offset: int,
        consumer_group: str,
        attempts: int,
    ) -> Failure:
        return cls(
            topic,
            partition,
            offset,
            consumer_group,
            attempts,
            error.__class__.__name__,
            safe_error_text(error),
        )

    def headers(self) -> Headers:
        return [
            (ORIGINAL_TOPIC, self.topic.encode()),
            (ORIGINAL_PARTITION, str(self.partition).encode()),
            (ORIGINAL_OFFSET, str(self.offset).encode()),
            (CONSUMER_GROUP, self.consumer_group.encode()),
            (ATTEMPTS, str(self.attempts).encode()),
            (ERROR_CLASS, self.error_class.encode()),
            (ERROR_MESSAGE, self.error_message.encode()),
            (FAILED_AT, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()),
        ]


def dead_letter_headers(original: Sequence[tuple[str, bytes | None]], failure: Failure) -> Headers:
    """The original headers (minus any earlier DLQ ones) followed by this failure's."""
    kept = [(k, v) for k, v in original if k not in DLQ_HEADERS and k != REPLAYED_FROM]
    return kept + failure.headers()


def replay_headers(dead: Sequence[tuple[str, bytes | None]], dlq_position: str) -> Headers:
    """The original headers again, plus where the replay came from (for the logs)."""
    kept = [(k, v) for k, v in dead if k not in DLQ_HEADERS and k != REPLAYED_FROM]
    return [*kept, (REPLAYED_FROM, dlq_position.encode())]
