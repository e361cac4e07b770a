"""The seeded fault schedule: which fault hits what, and when, as seconds from the load's start.

The same seed and load duration give the same schedule, printed before the run so a failing
run can be replayed. Kills land at random moments over the whole load; the five infrastructure
faults get one slot each (a shuffled order, a random moment inside the slot) so they never
overlap one another, and each one ends well before the load does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Every process kind the platform runs twice: each gets killed at least once.
KINDS = ("prequal-api", "outbox-publisher", "credit-service", "decision-service")
INSTANCES = (1, 2)
# The one operator (devstack.operator.NAME): killed on its own count, `operator_kills`.
OPERATOR = "loan-operator"

KILL = "kill"
KAFKA_RESTART = "kafka-restart"
BROKER_STOP = "broker-stop"
POSTGRES_CRASH = "postgres-crash"
READ_ONLY = "read-only-database"
REBALANCE_STORM = "rebalance-storm"
INFRASTRUCTURE = (KAFKA_RESTART, BROKER_STOP, POSTGRES_CRASH, READ_ONLY, REBALANCE_STORM)


@dataclass(frozen=True)
class Durations:
    """How long the faults that last last, in seconds."""

    broker_stop: float = 20.0
    read_only: float = 30.0
    storm: float = 10.0


FULL = Durations()
# The short schedule of `make test`: the same faults, shorter windows (docs/chaos.md).
SHORT = Durations(broker_stop=6.0, read_only=8.0, storm=10.0)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds from the load's start
    kind: str
    target: str
    duration: float = 0.0

    def line(self, seed: int) -> str:
        lasting = f" for {self.duration:g}s" if self.duration else ""
        return f"  seed {seed}  t={self.at:6.1f}s  {self.kind:<20} {self.target}{lasting}"


def _duration(kind: str, durations: Durations) -> float:
    return {
        BROKER_STOP: durations.broker_stop,
        READ_ONLY: durations.read_only,
        REBALANCE_STORM: durations.storm,
    }.get(kind, 0.0)


def _target(kind: str) -> str:
    return {
        KAFKA_RESTART: "kafka (SIGKILL, then start on the same data)",
        BROKER_STOP: "kafka (SIGSTOP, then SIGCONT)",
        POSTGRES_CRASH: "postgresql (pg_ctl stop -m immediate, then start)",
        READ_ONLY: "prequal database (default_transaction_read_only, sessions terminated)",
        REBALANCE_STORM: "credit-service (2 -> 4 -> 2 instances)",
    }[kind]


def kind_of(target: str) -> str:
    """`credit-service-2` -> `credit-service`; the operator is its own kind."""
    name, _, instance = target.rpartition("-")
    return name if instance.isdigit() else target


def build(
    seed: int, load_seconds: float, kills: int, durations: Durations, operator_kills: int = 0
) -> list[Fault]:
    """The schedule for a load of `load_seconds`: `kills` SIGKILLs of service instances (one of
    every kind first, then every other instance, then random ones), `operator_kills` SIGKILLs of
    the operator, and each infrastructure fault once."""
    rng = random.Random(seed)  # noqa: S311 - a replayable schedule, not a secret
    faults: list[Fault] = []
    everyone = [f"{kind}-{i}" for kind in KINDS for i in INSTANCES]
    # One instance of every kind first, then the other instances, then any.
    first = [f"{kind}-{rng.choice(INSTANCES)}" for kind in KINDS]
    rest = [t for t in everyone if t not in first]
    rng.shuffle(first)
    rng.shuffle(rest)
    targets = first + rest
    while len(targets) < kills:
        targets.append(rng.choice(everyone))
    # Kills over 5 %..90 % of the load, so the last ones are still under load.
    for target in targets[:kills]:
        faults.append(Fault(round(rng.uniform(0.05, 0.9) * load_seconds, 1), KILL, target))
    order = list(INFRASTRUCTURE)
    rng.shuffle(order)
    slot = 0.85 * load_seconds / len(order)
    for i, kind in enumerate(order):
        duration = _duration(kind, durations)
        room = max(0.0, slot - duration - 2.0)
        at = 0.05 * load_seconds + i * slot + rng.uniform(0, room)
        faults.append(Fault(round(at, 1), kind, _target(kind), duration))
    # Drawn last, so the rest of a seed's schedule is what it was before the operator ran.
    for _ in range(operator_kills):
        faults.append(Fault(round(rng.uniform(0.05, 0.9) * load_seconds, 1), KILL, OPERATOR))
    return sorted(faults, key=lambda f: f.at)
