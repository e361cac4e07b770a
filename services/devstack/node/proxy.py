"""kube-proxy in iptables mode: Service ClusterIPs and NodePorts on the node.

NodePorts answer on loopback too (`localhostNodePorts`, which sets route_localnet): that is
how `make cluster` exposes the API and Prometheus without a port-forward. Its KUBE-* chains
are removed by `network.sweep()` when the node stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.node.kubelet import NODE_NAME
from devstack.process import ManagedProcess, SingleProcessComponent
from devstack.tools import tool


@dataclass
class KubeProxy(SingleProcessComponent):
    directory: Path
    kubeconfig: Path
    cluster_cidr: str
    healthz_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "kube-proxy.log"

    def start(self, timeout: float = 60) -> KubeProxy:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "kube-proxy.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "iptables",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "hostnameOverride": NODE_NAME,
                    "clusterCIDR": self.cluster_cidr,
                    "healthzBindAddress": f"{LOOPBACK}:{self.healthz_port}",
                    "metricsBindAddress": f"{LOOPBACK}:{self.metrics_port}",
                    # Leave the machine's conntrack table size alone.
                    "conntrack": {"maxPerCore": 0, "min": 0},
                    "iptables": {"localhostNodePorts": True, "syncPeriod": "10s"},
                },
                sort_keys=False,
            )
        )
        self.process = ManagedProcess(
            "kube-proxy", [tool("kube-proxy"), f"--config={config}", "--v=1"], self.log_path
        )
        self.process.start()
        self.process.wait_ready(
            lambda: http_ok(f"http://{LOOPBACK}:{self.healthz_port}/healthz"), timeout
        )
        return self
