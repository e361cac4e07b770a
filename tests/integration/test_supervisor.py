"""`make run`'s supervision: a process that dies, also while starting, is restarted with a
growing back-off (CrashLoopBackOff), each restart printed and counted, and nothing it does
stops the platform. Real processes; the clock is the test's, so the back-off is exact."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from devstack.kubelet import LocalKubelet
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ComponentStartError, ManagedProcess
from devstack.services import Services, ServiceSpec
from devstack.supervisor import BackOff, Supervisor

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
    for now in (0, 0.5, 1, 2, 3, 7, 11):
        clock.now = now
        kubelet._converge(deployment, 1)  # never raises
    lines = [line for line in capsys.readouterr().out.splitlines() if "CrashLoopBackOff" in line]
    # Tried at 0, 1, 3, 7 and 11; skipped at 0.5 and 2, inside the back-off.
    assert _delays(lines) == [1, 2, 4, 4, 4]
    assert "restart 5 in 4s" in lines[-1]
    assert "died while starting" in lines[0]
    assert deployment.crashes is not None
    assert deployment.crashes.restarts == 5
    assert services.running == [], "a failed start leaves no process behind"


def _server(tmp_path: Path, port: int) -> ManagedProcess:
    """A process that serves /health until it is killed."""
    process = ManagedProcess(
        "prequal-api",
        [sys.executable, "-m", "http.server", str(port), "--bind", LOOPBACK],
        tmp_path / "api.log",
        cwd=tmp_path,
    )
    process.start()
    try:
        process.wait_ready(lambda: http_ok(f"http://{LOOPBACK}:{port}/"), timeout=30)
    except ComponentStartError:
        process.stop()
        raise
    return process


def test_a_killed_process_is_restarted_after_a_back_off_that_grows_while_it_crash_loops(
    tmp_path: Path,
) -> None:
    clock = Clock()
    said: list[str] = []
    port = free_port()
    healthy = {"yes": False}

    def start() -> ManagedProcess:
        if not healthy["yes"]:
            crasher = ManagedProcess("prequal-api", [sys.executable], tmp_path / "crash.log")
            crasher.start()
            crasher.wait_ready(lambda: False, timeout=30)  # raises: it exits at once
        return _server(tmp_path, port)

    supervisor = Supervisor(BackOff(initial=1, cap=60, reset_after=60), clock, said.append)
    first = _server(tmp_path, port)
    supervisor.keep("prequal-api", start, first)
    try:
        first.signal(signal.SIGKILL)
        first._proc.wait(10)  # type: ignore[union-attr]
        for now in (0, 1, 3):
            clock.now = now
            supervisor.tick()
        healthy["yes"] = True
        clock.now = 7
        supervisor.tick()
        assert said[0].startswith("==> prequal-api exited with code -9; restart 1 in 1s")
        assert _delays(said) == [1, 2, 4]
        assert said[-1] == "==> prequal-api restarted (restart 3)"
        assert supervisor.restarts() == {"prequal-api": 3}
        running = supervisor.supervised[0].process
        assert running is not None
        assert running.alive()
    finally:
        for item in supervisor.supervised:
            if item.process is not None:
                item.process.stop()
