"""How long to wait before trying again after a failure (a pass, a deletion's Kafka cleanup)."""

from __future__ import annotations


def backoff(failures: int, cap: float) -> float:
    """1, 2, 4, … seconds, capped: a broken Kafka is retried, never hammered."""
    return float(min(2 ** max(failures - 1, 0), cap))
