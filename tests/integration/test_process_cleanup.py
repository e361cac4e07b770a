"""No component outlives the run that started it: not after Ctrl-C, not after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        if proc.poll() is not None:
            pytest.fail(f"the child run exited early with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"the child run did not start its components within {timeout:.0f} s")


def _descendants_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return []
        time.sleep(0.2)
    return alive


# Its waits add up to more than pytest's 300 s default; each fails with its own message first.
@pytest.mark.timeout(120 + 180 + 20 + 60)
def test_ctrl_c_on_a_test_run_stops_postgres_kafka_and_the_control_plane(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(HERE / "interrupt_target.py"),
            "--basetemp",
            str(tmp_path / "base"),
        ],
        cwd=REPO,
        env={**os.environ, "CLEANUP_PIDS_FILE": str(pids_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A shell without job control starts background jobs with SIGINT ignored, and an
        # ignored signal stays ignored across exec: give the child the default disposition,
        # as a terminal would, so Python turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - the main thread forks
    )
    pids = [int(p) for p in _wait_for_file(pids_file, child, 120).split()]
    postgres_children = psutil.Process(pids[0]).children(recursive=True)
    child.send_signal(signal.SIGINT)
    try:
        child.wait(180)  # Kafka's controlled shutdown is slow on a loaded machine
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail("the child run did not stop within 180 s of Ctrl-C")
    assert len(pids) == 5  # postgres, java, etcd, kube-apiserver, kube-controller-manager
    everything = pids + [p.pid for p in postgres_children]
    assert _descendants_gone(everything) == []


def test_sigkill_of_the_parent_takes_its_components_down(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from devstack.postgres import Postgres
        pg = Postgres(Path({str(tmp_path)!r}) / "pg" / "data").start()
        print(pg.process.pid, flush=True)
        time.sleep(300)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip(), "the parent never started PostgreSQL"
    postmaster = int(line)
    backends = [p.pid for p in psutil.Process(postmaster).children(recursive=True)]
    assert backends, "PostgreSQL runs background processes; none were seen"

    parent.kill()
    parent.wait(10)
    parent.stdout.close()
    assert _descendants_gone([postmaster, *backends]) == []
