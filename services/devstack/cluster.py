"""The real single-node Kubernetes of `make cluster`, and the platform installed on it.

Composition only, in start order: the pod bridge, the control plane (every controller, bound
to the node's bridge address so pods reach it), containerd with the images, the kubelet,
kube-scheduler, kube-proxy, the NetworkPolicy agent, CoreDNS and Traefik (the Ingress
controller, on request); then `devstack.workloads` installs the dev infrastructure and both
charts. `stop()` goes in reverse and leaves no process, mount, network interface, iptables rule
or nftables table behind. `.run/cluster.env` lists the endpoints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hydra import AUDIENCE, SCOPES, Hydra, OAuthClient
from devstack.kube import ControlPlane
from devstack.net import LOOPBACK
from devstack.node import coredns, ingress, policy
from devstack.node.containerd import Containerd, mounts_under, unmount_all
from devstack.node.images import ImageLoader, extra_requested, image_set
from devstack.node.kubelet import NODE_NAME, Kubelet
from devstack.node.network import (
    NETNS_DIR,
    NODE_IP,
    POD_CIDR,
    PodNetwork,
    leftover_interfaces,
    owned_chains,
)
from devstack.node.proxy import KubeProxy
from devstack.node.scheduler import Scheduler
from devstack.postgres import Postgres
from devstack.process import ComponentStartError
from devstack.tools import tool

ProgressFn = Callable[[str], None]
# NodePorts live above the range free_port() hands out (20000-32000): a test's private server
# on a loopback port can never be shadowed by kube-proxy's loopback NodePort rules.
NODE_PORT_RANGE = "32080-32700"
API_SERVER_PORT = 6443
API_NODE_PORT = 32180
PROMETHEUS_NODE_PORT = 32190
# Traefik's web entrypoint: the API (/applications, /docs) and /prometheus through the Ingresses.
INGRESS_NODE_PORT = 32080
# The Ingresses' host (ci/kind-values.yaml and manifests/monitoring route `localhost`).
INGRESS_HOST = "localhost"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CACHE = Path(os.environ.get("PREQUAL_CACHE", Path.home() / ".cache" / "loan-prequal"))


@dataclass
class LocalCluster:
    run_dir: Path
    # KEY -> tag, as node.images.image_set() reads them from images/images.env.
    images: dict[str, str] = field(default_factory=image_set)
    # containerd's image store, kept between runs (see node/containerd.py).
    image_store: Path = field(default_factory=lambda: CACHE / "node" / "containerd-root")
    # `make cluster` writes it to .run/cluster.env, beside `make run`'s .run/env.
    env_path: Path | None = None
    network: PodNetwork | None = None
    control_plane: ControlPlane | None = None
    containerd: Containerd | None = None
    kubelet: Kubelet | None = None
    scheduler: Scheduler | None = None
    proxy: KubeProxy | None = None
    loader: ImageLoader | None = None
    # The lender's identity provider: Hydra on the host, its public port on the bridge address
    # so the API's pods fetch its JWKS; its own PostgreSQL on loopback.
    identity_postgres: Postgres | None = None
    hydra: Hydra | None = None
    # The two demo clients' credentials: written to the env file only, never printed or logged.
    clients: dict[str, OAuthClient] = field(default_factory=dict)
    # Whether Traefik runs: the endpoints go through it, else through the NodePorts.
    ingress_ready: bool = False
    # Whether the NetworkPolicy agent runs (false only when `make images` has not built it).
    policies_enforced: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.run_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.env_path or self.run_dir / "cluster.env"

    @property
    def node_dir(self) -> Path:
        return self.run_dir / "node"

    def start(self, progress: ProgressFn) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Every start is a new cluster: an old etcd would keep the `kubernetes` Service pointing
        # at the previous API server's port. Only the image store (outside run_dir) is kept.
        unmount_all(self.run_dir)
        for old in (self.run_dir / "kube", self.node_dir):
            shutil.rmtree(old, ignore_errors=True)
        progress(f"creating the pod bridge ({NODE_IP}, pods in {POD_CIDR})")
        self.network = PodNetwork(self.node_dir / "cni").start()
        progress(f"starting ORY Hydra on {NODE_IP} (the API's token issuer) and two demo clients")
        self._start_identity()
        progress("starting etcd, kube-apiserver and kube-controller-manager (every controller)")
        plane = ControlPlane(
            self.run_dir / "kube",
            bind_address=NODE_IP,
            # The port every cluster uses: NetworkPolicies (the operator's egress) name it.
            apiserver_port=API_SERVER_PORT,
            apiserver_stop_timeout=3,
            controllers="*",
            disabled_admission_plugins="",
        )
        pki = plane.pki.ensure()
        plane.extra_apiserver_args = [
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki.admin_cert}",
            f"--kubelet-client-key={pki.admin_key}",
            f"--service-node-port-range={NODE_PORT_RANGE}",
        ]
        self.control_plane = plane.start()
        shutil.copyfile(plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)

        progress("starting containerd (CRI) and loading the images into the node")
        self.containerd = Containerd(
            self.node_dir / "containerd",
            cni_conf_dir=self.network.conf_dir,
            sandbox_image=self.images["PAUSE_IMAGE"],
            root=self.image_store,
        ).start()
        self.loader = ImageLoader(self.containerd)
        self.loader.load_pause(self.node_dir)
        self.loader.load_from_docker(sorted(set(self.images.values())))
        if self.loader.missing:
            progress(
                "not in docker, so not in the node (run `make images`): "
                + ", ".join(self.loader.missing)
            )

        progress("starting kubelet, kube-scheduler and kube-proxy")
        self.kubelet = Kubelet(
            self.node_dir / "kubelet",
            kubeconfig=self.kubeconfig,
            runtime_endpoint=self.containerd.endpoint,
            node_ip=NODE_IP,
            client_ca=pki.ca_cert,
            cluster_dns=coredns.DNS_SERVICE_IP,
        ).start()
        self.scheduler = Scheduler(self.node_dir / "scheduler", self.kubeconfig).start()
        self.proxy = KubeProxy(self.node_dir / "proxy", self.kubeconfig, POD_CIDR).start()
        self.wait_node_ready()
        self._deploy_policy_agent(progress)
        progress("deploying CoreDNS (kube-system/coredns, Service kube-dns)")
        self.kubectl("apply", "-f", "-", stdin=coredns.manifests(self.images["COREDNS_IMAGE"]))
        if self.loader.missing and self.images["COREDNS_IMAGE"] in self.loader.missing:
            progress("the CoreDNS image is missing (`make images`): cluster names will not resolve")
            return
        self.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s"
        )
        self._deploy_ingress(progress)

    def _deploy_policy_agent(self, progress: ProgressFn) -> None:
        image = self.images["NETWORK_POLICIES_IMAGE"]
        if self.loader and image in self.loader.missing:
            progress(
                "the kube-network-policies image is missing (`make images`):"
                " NetworkPolicies not enforced"
            )
            return
        progress("deploying kube-network-policies (NetworkPolicy enforcement, NFQUEUE)")
        self.kubectl("apply", "-f", "-", stdin=policy.manifests(image))
        self.kubectl(
            "-n",
            policy.NAMESPACE,
            "rollout",
            "status",
            f"daemonset/{policy.NAME}",
            "--timeout=120s",
        )
        self.policies_enforced = True

    def _deploy_ingress(self, progress: ProgressFn) -> None:
        image = self.images["TRAEFIK_IMAGE"]
        if not extra_requested("traefik"):
            progress("no Ingress controller (opt in with PREQUAL_EXTRA_IMAGES=traefik)")
            return
        if self.loader and image in self.loader.missing:
            progress("the Traefik image is missing (`make images`): no Ingress controller")
            return
        progress(
            f"deploying Traefik (IngressClass {ingress.CLASS_NAME}, NodePort {INGRESS_NODE_PORT})"
        )
        self.kubectl("apply", "-f", "-", stdin=ingress.manifests(image, INGRESS_NODE_PORT))
        self.kubectl(
            "-n", ingress.NAMESPACE, "rollout", "status", "deployment/traefik", "--timeout=120s"
        )
        self.ingress_ready = True

    def _start_identity(self) -> None:
        self.identity_postgres = Postgres(self.node_dir / "identity" / "postgres" / "data").start()
        self.hydra = Hydra(
            self.node_dir / "identity",
            self.identity_postgres,
            host=NODE_IP,
            # Swagger UI's Authorize button (on the Ingress or the API's NodePort) asks Hydra.
            cors_origins=tuple(
                f"http://{h}:{port}"
                for h in (LOOPBACK, "localhost")
                for port in (API_NODE_PORT, INGRESS_NODE_PORT)
            ),
        ).start()
        self.clients = {
            "OIDC_CLIENT": self.hydra.register_client("demo-client"),
            "OIDC_OTHER_CLIENT": self.hydra.register_client("demo-other-client"),
            "OIDC_DOCS_CLIENT": self.hydra.register_client(
                "docs-client", auth_method="client_secret_basic"
            ),
        }

    def demo_client(self) -> OAuthClient:
        """The first demo client (OIDC_CLIENT_ID in the env file), to get tokens with."""
        return self.clients["OIDC_CLIENT"]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [tool("kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise ComponentStartError(
                f"kubectl {' '.join(args)} failed: {result.stderr.strip() or result.stdout}"
            )
        return result

    def wait_node_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.kubectl(
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            ).stdout
            if out.strip() == "True":
                return
            time.sleep(1)
        log = self.kubelet.log_path if self.kubelet else "(none)"
        raise ComponentStartError(f"node {NODE_NAME} not Ready after {timeout:.0f}s; see {log}")

    def endpoints(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig.resolve()),
            "API_URL": self.api_url,
            "PROMETHEUS_URL": self.prometheus_url,
            "OIDC_ISSUER": self.hydra.issuer if self.hydra else "",
            "OIDC_TOKEN_URL": self.hydra.token_url if self.hydra else "",
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_SCOPE": f"'{SCOPES}'",
        }

    @property
    def api_url(self) -> str:
        """Through Traefik and the chart's Ingress, as on a real cluster; else the NodePort."""
        if self.ingress_ready:
            return f"http://{INGRESS_HOST}:{INGRESS_NODE_PORT}"
        return f"http://{LOOPBACK}:{API_NODE_PORT}"

    @property
    def prometheus_url(self) -> str:
        if self.ingress_ready:
            return f"http://{INGRESS_HOST}:{INGRESS_NODE_PORT}/prometheus"
        return f"http://{LOOPBACK}:{PROMETHEUS_NODE_PORT}/prometheus"

    def write_env(self) -> None:
        """The endpoints and the demo clients' credentials, readable by the owner only."""
        credentials = {}
        for prefix, client in self.clients.items():
            credentials[f"{prefix}_ID"] = client.client_id
            credentials[f"{prefix}_SECRET"] = client.secret
        assignments = {**self.endpoints(), **credentials}
        self.env_file.touch(mode=0o600)
        self.env_file.chmod(0o600)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in assignments.items()))

    def stop(self) -> None:
        for component in (self.kubelet, self.proxy, self.scheduler):
            if component is not None:
                component.stop()
        if self.containerd is not None:
            self.containerd.stop()
        unmount_all(self.node_dir, self.image_store)
        policy.remove_table()
        if self.network is not None:
            self.network.stop()
        remove_pod_cgroups()
        for process in (self.hydra, self.identity_postgres):
            if process is not None:
                process.stop()
        if self.control_plane is not None:
            self.control_plane.stop()


def leftovers(run_dir: Path, image_store: Path) -> list[str]:
    """What a stopped node must not leave behind; empty after a clean stop."""
    found = [f"mount {m}" for m in mounts_under(run_dir, image_store)]
    found += [f"network namespace {n}" for n in sorted(NETNS_DIR.glob("cni-*"))]
    found += [f"interface {i}" for i in leftover_interfaces()]
    found += [f"iptables chain {c}" for c in owned_chains()]
    found += [f"cgroup {g}" for g in CGROUP_ROOT.glob("*/kubepods")]
    if policy.table_exists():
        found.append(f"nftables table inet {policy.NFT_TABLE}")
    return found


def remove_pod_cgroups() -> None:
    """The kubelet's `kubepods` cgroups (cgroupfs driver), deepest first, once they are empty."""
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
