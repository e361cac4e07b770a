"""The replica decision: KEDA's Kafka-scaler semantics and the HPA's scale-down window."""

from __future__ import annotations

import dataclasses

import pytest

from loan_operator.scaling import (
    PartitionOffsets,
    Recommendation,
    desired_replicas,
    partition_lag,
    stabilized_replicas,
    total_lag,
)
from loan_operator.spec import ConsumerSpec

BASE = ConsumerSpec(
    name="credit",
    deployment="credit",
    topic="loan_applications_submitted",
    consumer_group="credit",
    min_replicas=1,
    max_replicas=10,
    lag_threshold=10,
)


def consumer(**changes: object) -> ConsumerSpec:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


def test_lag_is_high_watermark_minus_committed_offset_summed_over_partitions() -> None:
    partitions = [PartitionOffsets(0, 0, 100, 40), PartitionOffsets(1, 0, 50, 50)]
    assert total_lag(partitions, "earliest") == 60


def test_partition_without_committed_offset_counts_its_whole_log_under_earliest() -> None:
    fresh = PartitionOffsets(0, low=20, high=120, committed=None)
    assert partition_lag(fresh, "earliest") == 100


def test_partition_without_committed_offset_counts_nothing_under_latest() -> None:
    fresh = PartitionOffsets(0, low=20, high=120, committed=None)
    assert partition_lag(fresh, "latest") == 0


def test_committed_offset_below_retention_start_counts_from_the_log_start() -> None:
    # Records below `low` were deleted by retention: the consumer cannot lag on them.
    assert partition_lag(PartitionOffsets(0, low=80, high=100, committed=10), "earliest") == 20


def test_lag_1000_threshold_10_is_capped_at_three_partitions() -> None:
    assert desired_replicas(1000, 3, consumer()) == 3


def test_allow_idle_consumers_lifts_the_partition_cap_up_to_max() -> None:
    assert desired_replicas(1000, 3, consumer(allow_idle_consumers=True)) == 10


def test_desired_is_the_ceiling_of_lag_over_threshold() -> None:
    assert desired_replicas(21, 12, consumer()) == 3
    assert desired_replicas(20, 12, consumer()) == 2


def test_no_lag_with_min_zero_scales_to_zero() -> None:
    assert desired_replicas(0, 3, consumer(min_replicas=0)) == 0


def test_lag_at_or_below_activation_threshold_keeps_zero() -> None:
    idle = consumer(min_replicas=0, activation_lag_threshold=50)
    assert desired_replicas(50, 3, idle) == 0
    assert desired_replicas(51, 3, idle) == 3  # ceil(51/10) = 6, capped at 3 partitions


def test_activation_threshold_does_not_apply_when_min_is_above_zero() -> None:
    assert desired_replicas(5, 3, consumer(min_replicas=1, activation_lag_threshold=50)) == 1


def test_min_replicas_wins_over_the_partition_cap() -> None:
    assert desired_replicas(0, 2, consumer(min_replicas=4)) == 4


@pytest.mark.parametrize(("lag", "expected"), [(0, 1), (1, 1), (95, 3)])
def test_clamped_to_min_and_max(lag: int, expected: int) -> None:
    assert desired_replicas(lag, 12, consumer(max_replicas=3)) == expected


def test_no_committed_offset_under_earliest_scales_a_new_group_up_from_zero() -> None:
    # KEDA corner case: a group that never committed must still be woken up by a backlog.
    backlog = [PartitionOffsets(p, 0, 400, None) for p in range(3)]
    lag = total_lag(backlog, "earliest")
    assert desired_replicas(lag, 3, consumer(min_replicas=0)) == 3
    lag_latest = total_lag(backlog, "latest")
    assert desired_replicas(lag_latest, 3, consumer(min_replicas=0)) == 0


def test_persistent_lag_keeps_replicas_steady_instead_of_oscillating() -> None:
    # KEDA corner case: lag that does not drain (a stuck consumer) yields the same decision
    # every poll; with the window, a later momentary dip does not shed the replicas.
    history = [Recommendation(float(t), desired_replicas(30, 3, consumer())) for t in range(5)]
    assert {r.replicas for r in history} == {3}
    dip = desired_replicas(5, 3, consumer())
    assert stabilized_replicas(3, dip, history, now=5.0, window=300) == 3


def test_scale_up_is_immediate() -> None:
    history = [Recommendation(0.0, 1)]
    assert stabilized_replicas(1, 5, history, now=1.0, window=300) == 5


def test_scale_down_waits_for_the_window_and_takes_its_highest_recommendation() -> None:
    history = [Recommendation(0.0, 6), Recommendation(10.0, 4)]
    assert stabilized_replicas(6, 1, history, now=20.0, window=60) == 6
    assert stabilized_replicas(6, 1, history, now=65.0, window=60) == 4
    assert stabilized_replicas(6, 1, history, now=75.0, window=60) == 1


def test_zero_window_scales_down_at_once() -> None:
    assert stabilized_replicas(5, 0, [Recommendation(0.0, 5)], now=0.0, window=0) == 0
