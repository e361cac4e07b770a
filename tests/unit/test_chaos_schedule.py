"""The chaos run's schedule (bench/chaos/schedule.py): replayable, and covering what it promises."""

from __future__ import annotations

import itertools

from bench.chaos import schedule


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    first = schedule.build(6470, 200, 26, schedule.FULL)
    assert first == schedule.build(6470, 200, 26, schedule.FULL)
    assert first != schedule.build(6471, 200, 26, schedule.FULL)


def test_the_full_schedule_kills_every_instance_and_has_each_infrastructure_fault_once() -> None:
    faults = schedule.build(1, 200, 26, schedule.FULL)
    kills = [f for f in faults if f.kind == schedule.KILL]
    assert len(kills) == 26
    assert {f.target for f in kills} == {
        f"{kind}-{i}" for kind in schedule.KINDS for i in schedule.INSTANCES
    }
    others = [f for f in faults if f.kind != schedule.KILL]
    assert sorted(f.kind for f in others) == sorted(schedule.INFRASTRUCTURE)
    lasting = {f.kind: f.duration for f in others if f.duration}
    assert lasting == {
        schedule.BROKER_STOP: 20.0,
        schedule.READ_ONLY: 30.0,
        schedule.REBALANCE_STORM: 10.0,
    }
    # Each infrastructure fault ends before the next begins, and all before the load does.
    ordered = sorted(others, key=lambda f: f.at)
    for before, after in itertools.pairwise(ordered):
        assert before.at + before.duration <= after.at
    assert all(f.at + f.duration <= 200 for f in faults)


def test_the_short_schedule_kills_one_instance_of_each_kind() -> None:
    for seed in range(20):
        kills = [f for f in schedule.build(seed, 50, 4, schedule.SHORT) if f.kind == schedule.KILL]
        assert sorted(f.target.rsplit("-", 1)[0] for f in kills) == sorted(schedule.KINDS)


def test_operator_kills_are_added_without_changing_the_rest_of_the_seeds_schedule() -> None:
    without = schedule.build(7, 200, 26, schedule.FULL)
    with_operator = schedule.build(7, 200, 26, schedule.FULL, operator_kills=4)
    operator = [f for f in with_operator if f.target == schedule.OPERATOR]
    assert len(operator) == 4
    assert all(f.kind == schedule.KILL and 10 <= f.at <= 180 for f in operator)
    assert [f for f in with_operator if f.target != schedule.OPERATOR] == without


def test_a_target_names_its_kind_and_the_operator_is_a_kind_of_its_own() -> None:
    assert schedule.kind_of("credit-service-2") == "credit-service"
    assert schedule.kind_of("prequal-api-1") == "prequal-api"
    assert schedule.kind_of(schedule.OPERATOR) == schedule.OPERATOR
