"""A circuit breaker for Kafka: after a failed batch, wait (exponentially longer) before trying.

While it is open the publisher claims nothing, so the backlog waits in PostgreSQL rather than
in the producer's memory. Time is passed in, which keeps it a pure, testable object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CircuitBreaker:
    base_delay: float = 0.5
    max_delay: float = 30.0
    failures: int = 0
    open_until: float = 0.0

    def allows(self, now: float) -> bool:
        return now >= self.open_until

    def remaining(self, now: float) -> float:
        return max(0.0, self.open_until - now)

    @property
    def is_open(self) -> bool:
        return self.failures > 0

    def record_failure(self, now: float) -> float:
        """Opens (or keeps open) the breaker; returns the delay before the next attempt."""
        delay = float(min(self.max_delay, self.base_delay * 2.0**self.failures))
        self.failures += 1
        self.open_until = now + delay
        return delay

    def record_success(self) -> None:
        self.failures = 0
        self.open_until = 0.0
