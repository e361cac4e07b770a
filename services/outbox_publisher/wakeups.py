"""Which workers a NOTIFY wakes: those owning the lanes it names (migration 0014).

A worker publishes the owned lanes with `lane % workers == its index` (publisher.py), so a
payload `"5,17"` concerns workers 5 % n and 17 % n only; waking the others would cost each a
claim that finds nothing. An empty or unreadable payload (a trigger from before 0014, or a
hand-written NOTIFY) wakes every worker, as it always did.
"""

from __future__ import annotations


def workers_to_wake(payload: str, workers: int) -> set[int]:
    every = set(range(workers))
    if not payload:
        return every
    try:
        lanes = [int(part) for part in payload.split(",")]
    except ValueError:
        return every
    if any(lane < 0 for lane in lanes):
        return every
    return {lane % workers for lane in lanes}
