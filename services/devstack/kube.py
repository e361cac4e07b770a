"""A local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

There is no scheduler and no kubelet: objects are stored, validated, admitted and garbage
collected as on a real cluster, but pods never run. The admin kubeconfig works with kubectl,
helm, kopf and the kubernetes Python client.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.pki import ControlPlanePki
from devstack.process import ManagedProcess
from devstack.tools import tool

SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager under one directory."""

    directory: Path
    apiserver_port: int = field(default_factory=free_port)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    controller_manager_port: int = field(default_factory=free_port)
    controllers: str = "garbagecollector,namespace,serviceaccount,serviceaccount-token"
    # `make cluster` binds to the node's bridge address (pods cannot reach loopback) and turns
    # ServiceAccount admission on (pods get their tokens); `make run` and the tests need neither.
    bind_address: str = LOOPBACK
    disabled_admission_plugins: str = "ServiceAccount"
    extra_apiserver_args: list[str] = field(default_factory=list)
    # kube-apiserver drains for ~20 s on SIGTERM; a throwaway cluster need not wait for it.
    apiserver_stop_timeout: float = 20.0
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.bind_address}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def pki(self) -> ControlPlanePki:
        extra = () if self.bind_address == LOOPBACK else (self.bind_address,)
        return ControlPlanePki(self.directory / "pki", extra_ips=extra)

    def start(self, timeout: float = 120) -> ControlPlane:
        pki = self.pki.ensure()
        logs = self.directory / "logs"
        etcd_url = f"http://{LOOPBACK}:{self.etcd_port}"
        etcd = ManagedProcess(
            "etcd",
            [
                tool("etcd"),
                "--name=prequal",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{LOOPBACK}:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{self.etcd_peer_port}",
                f"--initial-cluster=prequal=http://{LOOPBACK}:{self.etcd_peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            logs / "etcd.log",
        )
        self._run(etcd, lambda: http_ok(f"{etcd_url}/health", expect=b'"health":"true"'), timeout)

        admin = (pki.admin_cert, pki.admin_key)
        apiserver = ManagedProcess(
            "kube-apiserver",
            [
                tool("kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self.apiserver_port}",
                f"--bind-address={self.bind_address}",
                f"--advertise-address={self.bind_address}",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--disable-admission-plugins={self.disabled_admission_plugins}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
                *self.extra_apiserver_args,
            ],
            logs / "kube-apiserver.log",
            stop_timeout=self.apiserver_stop_timeout,
        )
        self._run(
            apiserver,
            lambda: http_ok(f"{self.url}/readyz", ca=pki.ca_cert, cert=admin, expect=b"ok"),
            timeout,
        )
        self._write_kubeconfig()

        controller_manager = ManagedProcess(
            "kube-controller-manager",
            [
                tool("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.controller_manager_port}",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
                f"--controllers={self.controllers}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
            logs / "kube-controller-manager.log",
        )
        self._run(
            controller_manager,
            lambda: http_ok(
                f"https://{LOOPBACK}:{self.controller_manager_port}/healthz",
                ca=self.directory / "controller-manager-certs" / "kube-controller-manager.crt",
                expect=b"ok",
            ),
            timeout,
        )
        return self

    def _run(self, process: ManagedProcess, probe: Callable[[], bool], timeout: float) -> None:
        self.processes.append(process)
        process.start()
        try:
            process.wait_ready(probe, timeout)
        except BaseException:
            self.stop()
            raise

    def _write_kubeconfig(self) -> None:
        pki = self.pki

        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "prequal-local",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": b64(pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "prequal-admin",
                    "user": {
                        "client-certificate-data": b64(pki.admin_cert),
                        "client-key-data": b64(pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "prequal-local",
                    "context": {"cluster": "prequal-local", "user": "prequal-admin"},
                }
            ],
            "current-context": "prequal-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
