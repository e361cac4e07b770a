"""kube-scheduler: places pods on the one node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess, SingleProcessComponent
from devstack.tools import tool


@dataclass
class Scheduler(SingleProcessComponent):
    directory: Path
    kubeconfig: Path
    port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "kube-scheduler.log"

    def start(self, timeout: float = 60) -> Scheduler:
        certs = self.directory / "scheduler-certs"
        self.process = ManagedProcess(
            "kube-scheduler",
            [
                tool("kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.port}",
                f"--cert-dir={certs}",
                "--leader-elect=false",
                "--v=1",
            ],
            self.log_path,
        )
        self.process.start()
        self.process.wait_ready(self._healthy, timeout)
        return self

    def _healthy(self) -> bool:
        certs = self.directory / "scheduler-certs"
        return http_ok(
            f"https://{LOOPBACK}:{self.port}/healthz",
            ca=certs / "kube-scheduler.crt",
            expect=b"ok",
        )
