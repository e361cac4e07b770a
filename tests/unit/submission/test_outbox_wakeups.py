"""Which publisher workers a NOTIFY wakes (outbox_publisher.wakeups, migration 0014)."""

from __future__ import annotations

import pytest

from outbox_publisher.wakeups import workers_to_wake


def test_named_lanes_wake_only_the_workers_that_own_them() -> None:
    # Two workers: even lanes are worker 0's, odd lanes worker 1's.
    assert workers_to_wake("5", 2) == {1}
    assert workers_to_wake("4,62", 2) == {0}
    assert workers_to_wake("3,17,40", 4) == {3, 1, 0}


def test_a_single_worker_is_woken_by_any_lane() -> None:
    assert workers_to_wake("63", 1) == {0}


@pytest.mark.parametrize("payload", ["", "x", "1,,2", "-1", "1;2"])
def test_an_empty_or_unreadable_payload_wakes_every_worker(payload: str) -> None:
    # A trigger from before migration 0014 sends '', as does a hand-written NOTIFY.
    assert workers_to_wake(payload, 3) == {0, 1, 2}
