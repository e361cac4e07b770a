"""What benchmarks measure besides their own figures: peak memory, CPU time and profiles."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil


class PeakRss:
    """Peak resident memory of named processes, sampled every 100 ms until `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
                except psutil.Error:
                    continue
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        """Stops sampling; the peaks in MiB, rounded to 0.1."""
        self._stop.set()
        self._thread.join()
        return {name: round(peak / 2**20, 1) for name, peak in self.peaks.items()}


class CpuTime:
    """CPU seconds (user + system) spent by named processes and their children between two calls.

    Children are counted while they live (PostgreSQL's backends, the JVM's threads are one
    process); a child that exits between the calls is missed, which the figures here never rely
    on: every backend of the benchmark keeps its connection.
    """

    def __init__(self, trees: dict[str, int], alone: dict[str, int] | None = None) -> None:
        """`trees`: processes counted with their children; `alone`: without them."""
        self.roots = {name: psutil.Process(pid) for name, pid in trees.items()}
        self.alone = {name: psutil.Process(pid) for name, pid in (alone or {}).items()}
        self.start = self._sample()

    def _sample(self) -> dict[str, dict[int, float]]:
        sample: dict[str, dict[int, float]] = {}
        groups = {name: [root, *root.children(recursive=True)] for name, root in self.roots.items()}
        groups.update({name: [process] for name, process in self.alone.items()})
        for name, processes in groups.items():
            seconds: dict[int, float] = {}
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                seconds[process.pid] = times.user + times.system
            sample[name] = seconds
        return sample

    def spent(self) -> dict[str, float]:
        """Seconds each named tree spent since construction (processes seen both times, or new)."""
        now = self._sample()
        return {
            name: sum(s - self.start[name].get(pid, 0.0) for pid, s in seconds.items())
            for name, seconds in now.items()
        }


class Profiles:
    """Sampling profiles (py-spy, 50 Hz) of named Python processes until `stop()`.

    Only the thread holding the GIL is sampled: on a saturated machine a thread woken by its
    socket waits in the run queue, and a wall-clock sample would blame the call it returns to.

    Each process gets `<out_dir>/profile-<name>.txt` in the collapsed-stack format that
    speedscope and flamegraph.pl read. `stop()` returns, per process, the functions where the
    most samples were taken (own time, not including callees).
    """

    def __init__(self, pids: dict[str, int], out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = {name: out_dir / f"profile-{name}.txt" for name in pids}
        spy = Path(sys.executable).with_name("py-spy")
        self.recorders = [
            subprocess.Popen(
                [
                    *(str(spy), "record", "--nonblocking", "--gil", "--rate", "50"),
                    *("--format", "raw", "--output", str(self.paths[name]), "--pid", str(pid)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]

    def stop(self, top: int = 8) -> dict[str, list[tuple[str, float]]]:
        for recorder in self.recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for recorder in self.recorders:
            recorder.wait(30)
        return {name: hottest(path, top) for name, path in self.paths.items() if path.exists()}


def hottest(collapsed: Path, top: int) -> list[tuple[str, float]]:
    """The `top` frames by share of samples taken in them, from a collapsed-stack file."""
    own: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            own[stack.rsplit(";", 1)[-1]] += int(count)
    total = sum(own.values()) or 1
    return [(frame, round(count / total, 3)) for frame, count in own.most_common(top)]


def apply_measured(
    applier: Any, items: Sequence[Any], batch: int, warmup: int, postgres_pid: int
) -> tuple[float, dict[str, float]]:
    """Applies `items` through a consumer's BatchApplier, `batch` at a time: the first `warmup`
    unmeasured, then the rest with the CPU of PostgreSQL (with its backends) and of this
    process measured. Every measured batch must apply whole. Returns (seconds, CPU by name)."""
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    for chunk in batches[: warmup // batch]:
        applier.apply(chunk, time.perf_counter())
    cpu = CpuTime({"postgres": postgres_pid}, alone={"python": os.getpid()})
    started = time.perf_counter()
    for chunk in batches[warmup // batch :]:
        failed, dead = applier.apply(chunk, time.perf_counter())
        assert not failed, [item.error for item in failed]
        assert not dead, dead
    return time.perf_counter() - started, cpu.spent()
