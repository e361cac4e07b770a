"""Restarts what dies, as a kubelet does: CrashLoopBackOff, with every restart printed and counted.

A process that exits, or dies before it is ready, is started again after a back-off that
doubles from `initial` to `cap`; one that stays up for `reset_after` starts afresh next time.
Nothing a supervised process does stops the platform: only Ctrl-C (or SIGTERM) does, and that
stops everything, supervised or not.

Restarts never block: a restart launches the process and returns, and each later `tick()`
asks its readiness probe once. So every crash loop runs on its own: two processes that die
together are launched in the same tick and each is back when *it* is ready, and a death is
noticed on the next tick even while other restarts are still starting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from devstack.process import ComponentStartError

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


class Child(Protocol):
    """What the supervisor needs of a process (devstack.process.ManagedProcess)."""

    @property
    def exit_code(self) -> int | None: ...

    def alive(self) -> bool: ...

    def stop(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None: ...


@dataclass(frozen=True)
class Launch:
    """A process just started and not yet known to be ready.

    `ready` is asked once per tick and must answer quickly (a local health probe); `discard`
    cleans up an instance that died or was given up on (default: stop its process group).
    """

    process: Child
    ready: Callable[[], bool]
    timeout: float = 60.0
    discard: Callable[[], None] | None = None

    def give_up(self) -> None:
        if self.discard is not None:
            self.discard()
        else:
            self.process.stop()

    def wait(self) -> Launch:
        """Blocks until ready (a platform's first start); a failed start leaves nothing behind
        and raises ComponentStartError with the tail of the process's log."""
        try:
            self.process.wait_ready(self.ready, self.timeout)
        except ComponentStartError:
            self.give_up()
            raise
        return self


def probe(ready: Callable[[], bool]) -> bool:
    """Asks a readiness probe once; an exception is a "not yet"."""
    try:
        return ready()
    except Exception:  # noqa: BLE001 - any probe failure means "not yet"
        return False


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
    launch: Callable[[], Launch]
    current: Launch | None = None
    # Set while `current` is launched but not ready yet: when it was launched.
    starting_since: float | None = None

    @property
    def process(self) -> Child | None:
        return self.current.process if self.current else None

    @property
    def starting(self) -> bool:
        return self.starting_since is not None


@dataclass
class Supervisor:
    """Keeps named processes running; `tick()` from the main thread (parent-death signals)."""

    backoff: BackOff = field(default_factory=BackOff)
    clock: Callable[[], float] = time.monotonic
    say: Say = _say
    supervised: list[Supervised] = field(default_factory=list)

    def keep(self, name: str, launch: Callable[[], Launch], running: Launch) -> None:
        """Supervises `running`, already ready; `launch` starts a new one without waiting."""
        item = Supervised(CrashLoop(name, self.backoff), launch, running)
        item.loop.started(self.clock())
        self.supervised.append(item)

    def tick(self) -> None:
        for item in self.supervised:
            self._tick(item)

    def _tick(self, item: Supervised) -> None:
        current = item.current
        if current is not None and item.starting_since is not None:
            self._check_start(item, current, item.starting_since)
            return
        if current is not None:
            if current.process.alive():
                return
            code = current.process.exit_code
            current.give_up()  # whatever it left in its process group
            item.current = None
            self.say(item.loop.crashed(self.clock(), f"exited with code {code}"))
        if not item.loop.may_start(self.clock()):
            return
        try:
            item.current = item.launch()
        except ComponentStartError as exc:
            self.say(item.loop.crashed(self.clock(), f"died while starting ({first_line(exc)})"))
            return
        item.starting_since = self.clock()

    def _check_start(self, item: Supervised, current: Launch, since: float) -> None:
        if not current.process.alive():
            why = f"exited with code {current.process.exit_code} before it was ready"
        elif probe(current.ready):
            item.starting_since = None
            item.loop.started(self.clock())
            self.say(f"==> {item.loop.name} restarted (restart {item.loop.restarts})")
            return
        elif self.clock() - since >= current.timeout:
            why = f"not ready after {current.timeout:g}s"
        else:
            return
        current.give_up()
        item.current = None
        item.starting_since = None
        self.say(item.loop.crashed(self.clock(), f"died while starting ({why})"))

    def restarts(self) -> dict[str, int]:
        return {item.loop.name: item.loop.restarts for item in self.supervised}
