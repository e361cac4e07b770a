"""`make run`'s supervision: a process that dies, also while starting, is restarted with a
growing back-off (CrashLoopBackOff), each restart printed and counted, and nothing it does
stops the platform. Real processes; the clock is the test's, so the back-off is exact."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.kubelet import LocalKubelet
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess
from devstack.services import Services, ServiceSpec
from devstack.supervisor import BackOff, Child, Launch, Supervisor
from tests.polling import wait_until

# `python` with no arguments and no stdin exits at once: a service that dies while starting.
CRASHER = ServiceSpec("credit-service", "python", "METRICS_PORT", "/health")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _delays(lines: list[str]) -> list[float]:
    return [float(m) for line in lines for m in re.findall(r"in (\d+(?:\.\d+)?)s", line)]


def test_a_consumer_dying_while_starting_backs_off_and_never_stops_the_platform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    services = Services({}, tmp_path)
    kubelet = LocalKubelet(
        api=None,  # type: ignore[arg-type] - _converge alone needs no API server
        services=services,
        backoff=BackOff(initial=1, cap=4),
        clock=clock,
    )
    kubelet.manage("prequal", "credit-service", CRASHER, {})
    deployment = kubelet.deployments[0]
    for now in (0, 0, 0.5, 1, 1, 2, 3, 3, 7, 7, 11, 11):
        clock.now = now
        kubelet._converge(deployment, 1)  # never raises, never waits for a start
        for service, _ in deployment.starting:  # the launched crasher has exited
            _exited(service.process)
    lines = [line for line in capsys.readouterr().out.splitlines() if "CrashLoopBackOff" in line]
    # Launched at 0, 1, 3, 7 and 11, each found dead at the next sync; none at 0.5 and 2,
    # inside the back-off.
    assert deployment.next_instance == 6
    assert _delays(lines) == [1, 2, 4, 4, 4]
    assert "restart 5 in 4s" in lines[-1]
    assert "died while starting (exited with code 0 before it was ready)" in lines[0]
    assert deployment.crashes is not None
    assert deployment.crashes.restarts == 5
    assert services.running == [], "a failed start leaves no process behind"


def _launch_server(tmp_path: Path, name: str, port: int, gate: Path | None = None) -> Launch:
    """A process that serves / until it is killed; ready once it answers (and `gate` exists)."""
    process = ManagedProcess(
        name,
        [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK],
        tmp_path / f"{name}.log",
        cwd=tmp_path,
    )
    process.start()

    def ready() -> bool:
        return (gate is None or gate.exists()) and http_ok(f"http://{LOOPBACK}:{port}/")

    return Launch(process, ready, timeout=30)


def _tick_until(supervisor: Supervisor, said: list[str], line: str) -> None:
    def said_it() -> bool:
        supervisor.tick()
        return line in said

    wait_until(said_it, timeout=30, what=line)


def _exited(process: Child | None) -> None:
    assert isinstance(process, ManagedProcess)
    assert process._proc is not None
    process._proc.wait(10)


def test_a_killed_process_is_restarted_after_a_back_off_that_grows_while_it_crash_loops(
    tmp_path: Path,
) -> None:
    clock = Clock()
    said: list[str] = []
    port = free_port()
    healthy = {"yes": False}

    def launch() -> Launch:
        if not healthy["yes"]:
            # `python` with no arguments and no stdin exits at once: it dies while starting.
            crasher = ManagedProcess("prequal-api", [sys.executable], tmp_path / "crash.log")
            crasher.start()
            return Launch(crasher, lambda: False, timeout=30)
        return _launch_server(tmp_path, "prequal-api", port)

    supervisor = Supervisor(BackOff(initial=1, cap=60, reset_after=60), clock, said.append)
    supervisor.keep("prequal-api", launch, _launch_server(tmp_path, "prequal-api", port).wait())
    item = supervisor.supervised[0]
    try:
        assert item.process is not None
        item.process.kill()
        for now in (0, 1, 3):
            clock.now = now
            supervisor.tick()  # at 0 the kill is noticed; at 1 and 3 a crasher is launched
            if now:
                _exited(item.process)
                supervisor.tick()  # ... and found dead before it was ready
        healthy["yes"] = True
        clock.now = 7
        _tick_until(supervisor, said, "==> prequal-api restarted (restart 3)")
        assert said[0].startswith("==> prequal-api exited with code -9; restart 1 in 1s")
        assert "died while starting (exited with code 0 before it was ready)" in said[1]
        assert _delays(said) == [1, 2, 4]
        assert supervisor.restarts() == {"prequal-api": 3}
        assert item.process is not None
        assert item.process.alive()
    finally:
        for each in supervisor.supervised:
            if each.process is not None:
                each.process.stop()


def test_two_processes_killed_together_come_back_independently_of_each_others_start(
    tmp_path: Path,
) -> None:
    """The slow one (its readiness gated by a file the test has not written) does not hold
    back the other's restart, nor the noticing of the other's next death."""
    said: list[str] = []
    gate = tmp_path / "slow-may-be-ready"
    ports = {"slow": free_port(), "quick": free_port()}

    def launcher(name: str) -> Callable[[], Launch]:
        return lambda: _launch_server(tmp_path, name, ports[name], gate if name == "slow" else None)

    supervisor = Supervisor(BackOff(initial=0.1, cap=1, reset_after=60), say=said.append)
    for name in ("slow", "quick"):
        supervisor.keep(name, launcher(name), _launch_server(tmp_path, name, ports[name]).wait())
    slow, quick = supervisor.supervised
    try:
        for item in (slow, quick):
            assert item.process is not None
            item.process.kill()
        _tick_until(supervisor, said, "==> quick restarted (restart 1)")
        assert slow.starting, "the slow one is still starting: the quick one did not wait for it"
        assert quick.process is not None
        quick.process.kill()
        _tick_until(supervisor, said, "==> quick restarted (restart 2)")
        assert slow.starting
        gate.touch()
        _tick_until(supervisor, said, "==> slow restarted (restart 1)")
        assert supervisor.restarts() == {"slow": 1, "quick": 2}
    finally:
        for item in supervisor.supervised:
            if item.process is not None:
                item.process.stop()
