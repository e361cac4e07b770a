"""The Supervisor's restarts do not block (services/devstack/supervisor.py): a restart is
launched and its readiness asked once per tick, so processes that die together are launched
together, each is back as soon as it is ready, and each crash loop keeps its own back-off.

Fake processes and a fake clock: this is the supervisor's own bookkeeping. The real-process
version is tests/integration/test_supervisor.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.supervisor import BackOff, Launch, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeProcess:
    """A process the test kills, and declares ready, by hand."""

    name: str
    code: int | None = None
    ready: bool = False
    stopped: bool = False

    @property
    def exit_code(self) -> int | None:
        return self.code

    def alive(self) -> bool:
        return self.code is None

    def stop(self, timeout: float | None = None) -> None:
        self.stopped = True
        if self.code is None:
            self.code = -15

    def kill(self) -> None:
        self.code = -9

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        assert probe()


@dataclass
class Launcher:
    """Launches FakeProcesses of one name and keeps every one it launched, in order."""

    name: str
    timeout: float = 60.0
    launched: list[FakeProcess] = field(default_factory=list)

    def __call__(self) -> Launch:
        process = FakeProcess(self.name)
        self.launched.append(process)
        return Launch(process, lambda: process.ready, self.timeout)

    @property
    def latest(self) -> FakeProcess:
        return self.launched[-1]


def _supervise(
    *names: str, timeout: float = 60.0
) -> tuple[Supervisor, Clock, list[str], dict[str, Launcher]]:
    clock = Clock()
    said: list[str] = []
    supervisor = Supervisor(BackOff(initial=1, cap=8, reset_after=60), clock, said.append)
    launchers = {}
    for name in names:
        launcher = Launcher(name, timeout)
        first = launcher()
        launcher.latest.ready = True
        supervisor.keep(name, launcher, first.wait())
        launchers[name] = launcher
    return supervisor, clock, said, launchers


def test_two_processes_dying_together_are_launched_in_one_tick_and_each_is_back_when_ready() -> (
    None
):
    supervisor, clock, said, launchers = _supervise("prequal-api-1", "credit-service-1")
    api, credit = launchers["prequal-api-1"], launchers["credit-service-1"]
    api.latest.kill()
    credit.latest.kill()

    supervisor.tick()  # both deaths noticed in one tick, each with its own back-off
    assert said == [
        "==> prequal-api-1 exited with code -9; restart 1 in 1s (CrashLoopBackOff)",
        "==> credit-service-1 exited with code -9; restart 1 in 1s (CrashLoopBackOff)",
    ]
    clock.now = 1
    supervisor.tick()  # both launched in the same tick: neither waited for the other
    assert len(api.launched) == 2
    assert len(credit.launched) == 2
    assert not api.latest.ready
    assert not credit.latest.ready

    clock.now = 2
    credit.latest.ready = True  # the second one is ready first, while the API still starts
    supervisor.tick()
    assert said[-1] == "==> credit-service-1 restarted (restart 1)"
    assert supervisor.supervised[0].starting

    credit.latest.kill()  # a new death is noticed while the API's restart is still starting
    clock.now = 2.5
    supervisor.tick()
    assert said[-1].startswith("==> credit-service-1 exited with code -9; restart 2 in 2s")

    clock.now = 3
    api.latest.ready = True
    supervisor.tick()
    assert said[-1] == "==> prequal-api-1 restarted (restart 1)"
    clock.now = 4.5
    supervisor.tick()
    assert len(credit.launched) == 3, "credit-service's own back-off (2 s from 2.5 s) is over"
    assert supervisor.restarts() == {"prequal-api-1": 1, "credit-service-1": 2}


def test_a_restart_that_dies_or_hangs_while_starting_backs_off_without_holding_the_others() -> None:
    supervisor, clock, said, launchers = _supervise(
        "decision-service-1", "loan-operator", timeout=10
    )
    decision, operator = launchers["decision-service-1"], launchers["loan-operator"]
    decision.latest.kill()
    operator.latest.kill()
    supervisor.tick()
    clock.now = 1
    supervisor.tick()  # both launched
    decision.latest.code = 1  # dies before it is ready
    clock.now = 2
    supervisor.tick()
    assert said[-1] == (
        "==> decision-service-1 died while starting (exited with code 1 before it was ready); "
        "restart 2 in 2s (CrashLoopBackOff)"
    )
    assert decision.launched[1].stopped, "what it left in its process group is stopped"
    clock.now = 4
    supervisor.tick()  # decision's next try, while the operator is still (not) starting
    assert len(decision.launched) == 3
    clock.now = 11  # the operator, launched at 1, has had its 10 s
    supervisor.tick()
    assert said[-1] == (
        "==> loan-operator died while starting (not ready after 10s); "
        "restart 2 in 2s (CrashLoopBackOff)"
    )
    assert operator.launched[1].stopped
    decision.latest.ready = True
    clock.now = 12
    supervisor.tick()
    assert said[-1] == "==> decision-service-1 restarted (restart 2)"
    clock.now = 13
    supervisor.tick()
    assert len(operator.launched) == 3, "the operator's own back-off, unaffected by the other"
    assert supervisor.restarts() == {"decision-service-1": 2, "loan-operator": 2}
