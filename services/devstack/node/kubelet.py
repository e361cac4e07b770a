"""The kubelet: registers the node with the API server and runs its pods on containerd.

Settings verified on these machines (TOOLCHAIN.md "Containers"): cgroupfs, swap tolerated, no
node-allocatable enforcement and no eviction thresholds (a shared build machine's disk and
memory would otherwise evict the platform), image garbage collection off (the images came
from `docker save` and cannot be pulled again). The kubelet serves on the node address so the
API server reaches it for logs and exec; that port allows what its client certificate allows,
which on this single-user machine is the admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess, SingleProcessComponent
from devstack.tools import tool

NODE_NAME = "prequal-node"
KUBELET_PORT = 10250


@dataclass
class Kubelet(SingleProcessComponent):
    directory: Path
    kubeconfig: Path
    runtime_endpoint: str
    node_ip: str
    client_ca: Path
    cluster_dns: str
    healthz_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def root_dir(self) -> Path:
        return self.directory / "root"

    @property
    def pod_logs_dir(self) -> Path:
        return self.directory / "pod-logs"

    @property
    def log_path(self) -> Path:
        return self.directory / "kubelet.log"

    def start(self, timeout: float = 60) -> Kubelet:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "config.yaml"
        config.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        self.process = ManagedProcess(
            "kubelet",
            [
                tool("kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={self.root_dir}",
                f"--cert-dir={self.directory / 'pki'}",
                f"--node-ip={self.node_ip}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
            self.log_path,
        )
        self.process.start()
        self.process.wait_ready(
            lambda: http_ok(f"http://{LOOPBACK}:{self.healthz_port}/healthz"), timeout
        )
        return self

    def _config(self) -> dict[str, object]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.node_ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": LOOPBACK,
            "healthzPort": self.healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.client_ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": self.runtime_endpoint,
            "failSwapOn": False,
            "enforceNodeAllocatable": [],
            "evictionHard": {},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "clusterDNS": [self.cluster_dns],
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": str(self.pod_logs_dir),
            "serializeImagePulls": False,
            "registerNode": True,
            "nodeStatusUpdateFrequency": "4s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }
