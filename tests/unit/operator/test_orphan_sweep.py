"""The orphan sweep removes only users of the operator's scheme whose pipeline the API says is
gone and that the watch has not reported alive within the interval; never `admin` or a user
outside the scheme, never a watched-out namespace's. Fakes for the API and the broker: the
rules are the unit; the real sweep against Kafka is in tests/k8s/operator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kube import Kube
from loan_operator.orphan_sweep import OrphanSweep, pipeline_of


class FakeKube:
    def __init__(self, alive: dict[tuple[str, str], str]) -> None:
        self.alive = alive
        self.asked: list[tuple[str, str]] = []

    def pipeline_bootstraps(self, namespaces: Sequence[str]) -> dict[tuple[str, str], str]:
        return {k: v for k, v in self.alive.items() if not namespaces or k[0] in namespaces}

    def pipeline_exists(self, namespace: str, name: str) -> bool:
        self.asked.append((namespace, name))
        return (namespace, name) in self.alive


class FakeBroker:
    def __init__(self, users: set[str]) -> None:
        self.users = set(users)
        self.revoked: list[str] = []

    def all_scram_users(self) -> set[str]:
        return set(self.users)

    def delete_scram_users(self, names: Sequence[str]) -> list[str]:
        gone = sorted(set(names) & self.users)
        self.users -= set(names)
        return gone

    def revoke(self, principals: Sequence[str]) -> int:
        self.revoked += principals
        return len(principals)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sweep(
    kube: FakeKube, broker: FakeBroker, clock: Clock, namespaces: Sequence[str] = ()
) -> OrphanSweep:
    return OrphanSweep(
        cast(Kube, kube),
        lambda bootstrap: cast(KafkaAdmin, broker),
        namespaces=namespaces,
        interval=60.0,
        clock=clock,
    )


def _users(ns: str, name: str) -> set[str]:
    return {f"{ns}.{name}.{role}" for role in ("publisher", "credit-service")}


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ("lending.retail.publisher", ("lending", "retail")),
        ("lending.retail.v2.credit-service", ("lending", "retail.v2")),
        ("admin", None),
        ("lending.retail", None),
        ("lending.retail.someone-else", None),
        (".retail.publisher", None),
        ("Lending.retail.publisher", None),
    ],
)
def test_only_the_operators_naming_scheme_names_a_pipeline(
    user: str, owner: tuple[str, str] | None
) -> None:
    assert pipeline_of(user) == owner


def test_removes_the_users_of_a_deleted_pipeline_and_nothing_else() -> None:
    alive = {("lending", "live"): "kafka:9092"}
    broker = FakeBroker(_users("lending", "live") | _users("lending", "gone") | {"admin", "x.y"})
    kube, clock = FakeKube(alive), Clock()
    removed = _sweep(kube, broker, clock).sweep()
    assert removed == {"kafka:9092": sorted(_users("lending", "gone"))}
    assert broker.users == _users("lending", "live") | {"admin", "x.y"}
    assert sorted(broker.revoked) == sorted(_users("lending", "gone"))


def test_a_pipeline_seen_alive_within_the_interval_is_left_for_a_later_sweep() -> None:
    alive = {("lending", "live"): "kafka:9092"}
    broker = FakeBroker(_users("lending", "live") | _users("lending", "new"))
    kube, clock = FakeKube(alive), Clock()
    sweep = _sweep(kube, broker, clock)
    # The watch reported it (being created, or just deleted) but the API answers "absent".
    sweep.saw({"metadata": {"namespace": "lending", "name": "new"}, "spec": {}})
    assert sweep.sweep() == {}
    assert broker.users == _users("lending", "live") | _users("lending", "new")
    clock.now += 61
    assert sweep.sweep() == {"kafka:9092": sorted(_users("lending", "new"))}


def test_asks_the_api_not_a_cache_and_keeps_users_of_a_pipeline_it_finds() -> None:
    kube, clock = FakeKube({("lending", "live"): "kafka:9092"}), Clock()
    broker = FakeBroker(_users("lending", "late"))
    sweep = _sweep(kube, broker, clock)
    sweep.sweep()  # learns the cluster; "late" is absent: removed
    broker.users |= _users("lending", "late2")
    kube.alive[("lending", "late2")] = "kafka:9092"  # exists now, never seen by the watch
    clock.now += 61
    sweep.sweep()
    assert broker.users == _users("lending", "late2")


def test_a_namespace_the_operator_does_not_watch_is_not_its_to_sweep() -> None:
    kube, clock = FakeKube({("lending", "live"): "kafka:9092"}), Clock()
    broker = FakeBroker(_users("lending", "gone") | _users("other", "gone"))
    _sweep(kube, broker, clock, namespaces=["lending"]).sweep()
    assert broker.users == _users("other", "gone")
    assert ("other", "gone") not in kube.asked


def test_a_cluster_is_remembered_after_its_last_pipeline_is_gone() -> None:
    kube, clock = FakeKube({}), Clock()
    broker = FakeBroker(_users("lending", "gone"))
    sweep = _sweep(kube, broker, clock)
    body: dict[str, Any] = {
        "metadata": {"namespace": "lending", "name": "gone"},
        "spec": {"kafka": {"bootstrapServers": "kafka:9092"}},
    }
    sweep.saw(body)
    clock.now += 61
    assert sweep.sweep() == {"kafka:9092": sorted(_users("lending", "gone"))}
