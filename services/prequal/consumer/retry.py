"""Retry and backoff: how long to wait before trying records again, and how to wait.

A wait pauses the assignment but keeps polling the consumer, so heartbeats and rebalances are
served meanwhile; a record that arrives anyway (a partition assigned during the wait) is kept
for the next batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from prequal.consumer.offsets import Ownership
from prequal.kafka import EventConsumer, InboundRecord


class StopRequestedError(Exception):
    """Shutdown was asked for during a wait: leave the records in hand to the next owner."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Exponential from `initial_backoff`, capped: attempt 1 waits initial, 2 twice that…"""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** max(attempt - 1, 0)))


@dataclass
class PausedWait:
    """Backs off with the assignment paused, still serving rebalances and heartbeats."""

    consumer: EventConsumer
    ownership: Ownership
    stop: threading.Event
    max_batch: int
    carry: list[InboundRecord] = field(default_factory=list)

    def __call__(self, seconds: float, *, give_up_on_stop: bool = False) -> None:
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        try:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                if self.stop.is_set():
                    if give_up_on_stop:
                        raise StopRequestedError
                    return
                self.carry.extend(self.consumer.consume(self.max_batch, min(0.2, remaining)))
        finally:
            self.consumer.resume([tp for tp in assignment if self.ownership.holds(tp)])

    def take_carried(self) -> list[InboundRecord]:
        """Records that arrived during waits, for the next batch."""
        carried, self.carry = self.carry, []
        return carried
