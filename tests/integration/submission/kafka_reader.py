"""Reading a topic back in tests: every record with its key, headers and value."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer


@dataclass(frozen=True)
class Record:
    key: str
    headers: dict[str, str]
    value: bytes
    partition: int
    offset: int


def _headers(raw: object) -> dict[str, str]:
    pairs = raw if isinstance(raw, list) else []
    return {
        str(name): value.decode() if isinstance(value, bytes) else str(value or "")
        for name, value in pairs
    }


def read_records(
    bootstrap: str, topic: str, until: int, timeout: float = 60.0, settle: float = 0.0
) -> list[Record]:
    """Reads from the beginning until `until` records came (then `settle` seconds more)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                records.append(
                    Record(
                        key=(msg.key() or b"").decode(),
                        headers=_headers(msg.headers()),
                        value=msg.value() or b"",
                        partition=msg.partition() or 0,
                        offset=msg.offset() or 0,
                    )
                )
            if settle_until is None and len(records) >= until:
                settle_until = time.monotonic() + settle
    finally:
        consumer.close()
    return records
