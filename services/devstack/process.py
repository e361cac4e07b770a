"""A child process that cannot outlive its parent, with its output kept in a log file."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


class ComponentStartError(RuntimeError):
    """A component did not become ready; the message carries the tail of its log."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any uid change, which would clear it):
    # if the parent dies, even by SIGKILL, the kernel sends the child SIGKILL.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One long-running child in its own process group.

    Started from the main thread on purpose: the parent-death signal fires when the *thread*
    that forked the child ends, so a child started from a short-lived thread would die with it.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def exit_code(self) -> int | None:
        """The exit status once it has ended (negative: killed by that signal), else None."""
        return self._proc.poll() if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - started from the main thread
            )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Polls `probe` until it answers True; raises with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                code = self._proc.returncode if self._proc else None
                raise ComponentStartError(
                    f"{self.name} exited with code {code} before it was ready; "
                    f"log {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                if probe():
                    return
            except Exception as exc:  # noqa: BLE001 - any probe failure means "not yet"
                last_error = exc
            time.sleep(0.1)
        self.stop()
        raise ComponentStartError(
            f"{self.name} was not ready after {timeout:.0f}s (last probe error: {last_error!r}); "
            f"log {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def signal(self, sig: signal.Signals) -> None:
        if self.alive() and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def stop(self, timeout: float | None = None) -> None:
        """Asks the whole process group to stop, then kills what is left."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            self.signal(self.stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout if timeout is not None else self.stop_timeout)
        # Whatever the leader left behind in its group (e.g. postgres backends) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, for failure tests: no clean shutdown."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)


class SingleProcessComponent:
    """Stop, kill and log access for a component that runs as one ManagedProcess.

    Subclasses (dataclasses) set `process` when they start and define `log_path`.
    """

    process: ManagedProcess | None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL, for failure tests; `start()` again restarts on the same port and data."""
        if self.process:
            self.process.kill()

    def log_tail(self) -> str:
        return log_tail(self.log_path)
