"""Restarts what dies, as a kubelet does: CrashLoopBackOff, with every restart printed and counted.

A process that exits, or dies before it is ready, is started again after a back-off that
doubles from `initial` to `cap`; one that stays up for `reset_after` starts afresh next time.
Nothing a supervised process does stops the platform: only Ctrl-C (or SIGTERM) does, and that
stops everything, supervised or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from devstack.process import ComponentStartError, ManagedProcess

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class BackOff:
    initial: float = 1.0
    cap: float = 60.0
    reset_after: float = 60.0


@dataclass
class CrashLoop:
    """One supervised thing's restarts: how many, and when the next start may happen."""

    name: str
    backoff: BackOff = field(default_factory=BackOff)
    restarts: int = 0
    delay: float = 0.0
    not_before: float = 0.0
    up_since: float | None = None

    def crashed(self, now: float, why: str) -> str:
        """Records a crash; returns the line to print."""
        if self.up_since is not None and now - self.up_since >= self.backoff.reset_after:
            self.delay = 0.0
        self.delay = (
            self.backoff.initial if not self.delay else min(self.backoff.cap, self.delay * 2)
        )
        self.restarts += 1
        self.not_before = now + self.delay
        self.up_since = None
        return (
            f"==> {self.name} {why}; restart {self.restarts} in {self.delay:g}s (CrashLoopBackOff)"
        )

    def may_start(self, now: float) -> bool:
        return now >= self.not_before

    def started(self, now: float) -> None:
        self.up_since = now


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclass
class Supervised:
    loop: CrashLoop
    start: Callable[[], ManagedProcess]
    process: ManagedProcess | None = None


@dataclass
class Supervisor:
    """Keeps named processes running; `tick()` from the main thread (parent-death signals)."""

    backoff: BackOff = field(default_factory=BackOff)
    clock: Callable[[], float] = time.monotonic
    say: Say = _say
    supervised: list[Supervised] = field(default_factory=list)

    def keep(self, name: str, start: Callable[[], ManagedProcess], running: ManagedProcess) -> None:
        """Supervises `running`, already started; `start` starts (and waits for) a new one."""
        item = Supervised(CrashLoop(name, self.backoff), start, running)
        item.loop.started(self.clock())
        self.supervised.append(item)

    def tick(self) -> None:
        for item in self.supervised:
            process = item.process
            if process is not None and process.alive():
                continue
            if process is not None:
                code = process._proc.returncode if process._proc else None
                process.stop()  # whatever it left in its process group
                item.process = None
                self.say(item.loop.crashed(self.clock(), f"exited with code {code}"))
            if not item.loop.may_start(self.clock()):
                continue
            try:
                item.process = item.start()
            except ComponentStartError as exc:
                self.say(
                    item.loop.crashed(self.clock(), f"died while starting ({first_line(exc)})")
                )
                continue
            item.loop.started(self.clock())
            self.say(f"==> {item.loop.name} restarted (restart {item.loop.restarts})")

    def restarts(self) -> dict[str, int]:
        return {item.loop.name: item.loop.restarts for item in self.supervised}
