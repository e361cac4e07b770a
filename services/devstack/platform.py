"""The whole local platform in one object: what `make run` starts, in order.

Components come up one after another (each waits until it really answers) and go down in
reverse. `.run/env` lists every endpoint as shell assignments for scripts and `make demo`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.net import LOOPBACK, port_is_free
from devstack.postgres import Postgres
from devstack.prometheus import Prometheus


class PortInUseError(RuntimeError):
    pass


# Called with the name of each component as it starts.
ProgressFn = Callable[[str], None]


@dataclass
class Ports:
    postgres: int = 5432
    kafka: int = 9092
    api: int = 8000
    prometheus: int = 9090


@dataclass
class LocalPlatform:
    run_dir: Path
    ports: Ports = field(default_factory=Ports)
    postgres: Postgres | None = None
    kafka: Kafka | None = None
    control_plane: ControlPlane | None = None
    prometheus: Prometheus | None = None

    def check_ports(self) -> None:
        flags = {
            "postgres": "--postgres-port",
            "kafka": "--kafka-port",
            "api": "--api-port",
            "prometheus": "--prometheus-port",
        }
        busy = [
            f"{name} port {port} is already in use on {LOOPBACK}: stop whatever listens there "
            f"or pass {flags[name]} PORT"
            for name, port in vars(self.ports).items()
            if not port_is_free(port)
        ]
        if busy:
            raise PortInUseError("\n".join(busy))

    def start(self, progress: ProgressFn) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.check_ports()
        progress("PostgreSQL")
        self.postgres = Postgres(
            self.run_dir / "postgres" / "data", port=self.ports.postgres, durable=True
        ).start()
        progress("Kafka")
        self.kafka = Kafka(self.run_dir / "kafka" / "data", port=self.ports.kafka).start()
        progress("Kubernetes control plane")
        self.control_plane = ControlPlane(self.run_dir / "kube").start()
        shutil.copyfile(self.control_plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        progress("Prometheus")
        self.prometheus = Prometheus(
            self.run_dir / "prometheus" / "data",
            port=self.ports.prometheus,
            scrape_interval="5s",
        ).start()
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.endpoints().items()))

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.run_dir / "env"

    def endpoints(self) -> dict[str, str]:
        assert self.postgres
        assert self.kafka
        assert self.prometheus
        return {
            "API_URL": f"http://{LOOPBACK}:{self.ports.api}",
            "DATABASE_URL": self.postgres.url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "KUBECONFIG": str(self.kubeconfig.resolve()),
            "PROMETHEUS_URL": self.prometheus.url,
        }

    def stop(self) -> None:
        for component in (self.prometheus, self.control_plane, self.kafka, self.postgres):
            if component is not None:
                component.stop()
