"""How many consumer replicas a lag asks for: pure functions, no clock, no I/O.

Follows KEDA's Kafka scaler: lag is summed over partitions from committed offsets and high
watermarks; a partition with no committed offset counts by `offsetResetPolicy` (earliest: the
whole retained log, latest: nothing — the consumer would start at the end); more replicas than
partitions would sit idle unless `allowIdleConsumers`; below `activationLagThreshold` a
deployment with `minReplicas: 0` goes to zero. Scale-down is stabilized like the HPA: the
highest recommendation seen within the window wins, so a brief dip in lag does not shed
consumers that are about to be needed again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from loan_operator.spec import ConsumerSpec, OffsetResetPolicy


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    low: int  # earliest retained offset
    high: int  # high watermark: the offset the next record will get
    committed: int | None  # the group's committed offset, None when it never committed


def partition_lag(offsets: PartitionOffsets, reset_policy: OffsetResetPolicy) -> int:
    if offsets.committed is None:
        return max(offsets.high - offsets.low, 0) if reset_policy == "earliest" else 0
    # A committed offset below the retained log start reads from `low` on the next fetch.
    return max(offsets.high - max(offsets.committed, offsets.low), 0)


def total_lag(partitions: Iterable[PartitionOffsets], reset_policy: OffsetResetPolicy) -> int:
    return sum(partition_lag(p, reset_policy) for p in partitions)


def desired_replicas(lag: int, partitions: int, consumer: ConsumerSpec) -> int:
    """ceil(lag ÷ lagThreshold), capped at the partition count, clamped to [min, max]."""
    if lag <= consumer.activation_lag_threshold and consumer.min_replicas == 0:
        return 0
    wanted = math.ceil(lag / consumer.lag_threshold)
    if not consumer.allow_idle_consumers:
        wanted = min(wanted, partitions)
    return max(consumer.min_replicas, min(wanted, consumer.max_replicas))


@dataclass(frozen=True)
class Recommendation:
    at: float  # monotonic seconds
    replicas: int


def stabilized_replicas(
    current: int,
    recommended: int,
    history: Iterable[Recommendation],
    now: float,
    window: float,
) -> int:
    """Scale up at once; scale down to the highest recommendation within the window.

    `history` holds earlier recommendations (the caller appends `recommended` afterwards).
    """
    if recommended >= current:
        return recommended
    recent = [r.replicas for r in history if now - r.at < window]
    return min(current, max([recommended, *recent]))


def prune(history: list[Recommendation], now: float, window: float) -> list[Recommendation]:
    return [r for r in history if now - r.at < window]
