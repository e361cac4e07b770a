"""What each fault of the schedule does to the platform, and the windows it leaves behind.

Every fault runs in a thread of its own, so a slow restart (Kafka's JVM, a loaded machine)
never delays another fault's start or end, nor the supervisor on the main thread. A process
started from a thread dies when that thread ends (devstack.process: the parent-death signal),
so every fault thread lives until `finish()`, after the platform has stopped.

A window records when a fault began and when it was over (the restart done, the SIGCONT sent,
the setting reverted) in wall-clock seconds; the database outages' windows are where a `503`
is expected, and every window's end is where recovery is measured from.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from bench.chaos import schedule
from bench.chaos.platform import DATABASE, ChaosPlatform

from devstack.postgres import _server_user
from devstack.services import CREDIT, RunningService
from devstack.supervisor import first_line
from devstack.tools import tool

# Extra credit-service instances of the rebalance storm: 2 -> 4 -> 2.
STORM_INSTANCES = (3, 4)


@dataclass
class Window:
    kind: str
    target: str
    start: float  # wall clock
    end: float | None = None
    # A database outage: `503`s from the API are expected inside it (plus the grace).
    outage: bool = False
    skipped: str = ""
    failed: bool = False


@dataclass
class Injector:
    platform: ChaosPlatform
    say: Callable[[str], None]
    windows: list[Window] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _over: threading.Event = field(default_factory=threading.Event)
    # One infrastructure fault at a time: a SIGSTOP must not land on a Kafka still restarting.
    _infrastructure: threading.Lock = field(default_factory=threading.Lock)

    def inject(self, fault: schedule.Fault) -> None:
        """Starts `fault` now, in its own thread."""
        thread = threading.Thread(target=self._run, args=(fault,), name=fault.kind, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, fault: schedule.Fault) -> None:
        if fault.kind == schedule.KILL:
            self._apply(fault)
        else:
            with self._infrastructure:
                self._apply(fault)
        self._over.wait()  # the processes this thread started must outlive it until the end

    def _apply(self, fault: schedule.Fault) -> None:
        window = Window(fault.kind, fault.target, time.time())
        self.windows.append(window)
        self.say(f"fault: {fault.kind} {fault.target}")
        action = {
            schedule.KILL: self._kill,
            schedule.KAFKA_RESTART: self._kafka_restart,
            schedule.BROKER_STOP: self._broker_stop,
            schedule.POSTGRES_CRASH: self._postgres_crash,
            schedule.READ_ONLY: self._read_only,
            schedule.REBALANCE_STORM: self._storm,
        }[fault.kind]
        try:
            ender = action(window)
            if ender is not None:
                time.sleep(max(0.0, window.start + fault.duration - time.time()))
                ender()
                self.say(f"fault over: {fault.kind} after {time.time() - window.start:.1f}s")
        except Exception as exc:  # noqa: BLE001 - a fault that cannot be injected fails the run
            window.failed = True
            self.failures.append(f"fault {fault.kind} {fault.target} failed: {first_line(exc)}")
            self.say(self.failures[-1])
        window.end = time.time()

    @property
    def busy(self) -> bool:
        # A thread waiting for the infrastructure lock has no window yet.
        return any(w.end is None for w in self.windows) or len(self.windows) < len(self._threads)

    def finish(self) -> None:
        """After the platform stopped: lets the fault threads end."""
        self._over.set()
        for thread in self._threads:
            thread.join(5)

    # --- the faults ---------------------------------------------------------------------------

    def _kill(self, window: Window) -> None:
        # A service instance still in its back-off is replaced by a running instance, of its
        # kind first, so every scheduled kill lands (at least 20 in the full run). The operator
        # has no stand-in: a kill that finds it down is skipped.
        kind = schedule.kind_of(window.target)
        items = sorted(
            self.platform.supervisor.supervised,
            key=lambda item: (item.loop.name != window.target, not item.loop.name.startswith(kind)),
        )
        if kind == schedule.OPERATOR:
            items = items[:1]
        else:
            items = [i for i in items if i.loop.name != schedule.OPERATOR]
        for item in items:
            process = item.process
            if process is not None and process.alive():
                if item.loop.name != window.target:
                    self.say(f"  {window.target} is in its back-off: killing {item.loop.name}")
                    window.target = item.loop.name
                process.kill()
                return
        window.skipped = "nothing running"
        self.say("  no instance running: kill skipped")

    def _kafka_restart(self, window: Window) -> None:
        kafka = self.platform.kafka
        assert kafka
        kafka.kill()
        kafka.start(timeout=180)

    def _broker_stop(self, window: Window) -> Callable[[], None]:
        kafka = self.platform.kafka
        assert kafka
        assert kafka.process
        process = kafka.process
        process.signal(signal.SIGSTOP)
        return lambda: process.signal(signal.SIGCONT)

    def _postgres_crash(self, window: Window) -> None:
        postgres = self.platform.postgres
        assert postgres
        assert postgres.process
        window.outage = True
        user = _server_user()
        subprocess.run(
            [tool("pg_ctl"), "stop", "-D", str(postgres.data_dir), "-m", "immediate", "-w"],
            capture_output=True,
            check=True,
            user=user,
            group=user,
        )
        postgres.process.stop()  # reaps the postmaster; nothing is left in its group
        postgres.start(timeout=180)

    def _read_only(self, window: Window) -> Callable[[], None]:
        window.outage = True
        _set_read_only(self.platform, on=True)
        return lambda: _set_read_only(self.platform, on=False)

    def _storm(self, window: Window) -> Callable[[], None]:
        extra: list[RunningService] = []
        for instance in STORM_INSTANCES:
            extra.append(self.platform.start_extra(CREDIT, instance))

        def end() -> None:
            for service in extra:
                self.platform.stop_extra(service)

        return end


def _set_read_only(platform: ChaosPlatform, *, on: bool) -> None:
    """A database that answers but refuses writes (a failover to a standby), or back to normal.

    The setting applies to new sessions, so the database's sessions are terminated both ways.
    """
    assert platform.postgres
    setting = (
        "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    )
    with psycopg.connect(platform.postgres.url_for("postgres"), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{DATABASE}" {setting}')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (DATABASE,),
        )


def pg_dump_binary() -> Path:
    """pg_dump beside the toolchain's postgres (make tools links only the server binaries)."""
    return Path(tool("postgres")).resolve().parent / "pg_dump"
