"""A deadline that has just passed must not turn into librdkafka's "wait forever".

librdkafka reads any negative timeout as infinite. The consumer runtime computes its waits as
`deadline - time.monotonic()`; on a busy machine that is sometimes a hair below zero, and the
retry backoff then never ended (the record was never retried nor dead-lettered).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from prequal.kafka import create_consumer, create_producer
from prequal.kafka_security import KafkaConnection

# The discard port: nothing answers, and nothing is needed to answer.
NOWHERE = KafkaConnection("127.0.0.1:9")


def _returns_within(seconds: float, call: Callable[[], object]) -> bool:
    done = threading.Event()

    def _run() -> None:
        call()
        done.set()

    threading.Thread(target=_run, daemon=True).start()
    return done.wait(seconds)


@pytest.mark.parametrize("timeout", [-0.0001, -1.0])
def test_a_consume_with_a_passed_deadline_returns_at_once(timeout: float) -> None:
    consumer = create_consumer(NOWHERE, "timeouts", "timeouts", {"log_level": 0})
    assert _returns_within(5, lambda: consumer.consume(10, timeout)), "consume waited forever"


@pytest.mark.parametrize("timeout", [-0.0001, -1.0])
def test_a_producer_poll_or_flush_with_a_passed_deadline_returns_at_once(timeout: float) -> None:
    producer = create_producer(NOWHERE, "timeouts")
    producer.produce("t", b"k", b"v", [], lambda _err: None)  # keeps flush from returning early
    assert _returns_within(5, lambda: producer.poll(timeout)), "poll waited forever"
    assert _returns_within(5, lambda: producer.flush(timeout)), "flush waited forever"
    producer.purge()
