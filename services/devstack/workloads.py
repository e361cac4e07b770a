"""What `make cluster` installs on the node: manifests/dev, manifests/monitoring and both charts.

The same objects the Tiltfile applies on kind, and its own helm() values files and `--set`s,
read from the Tiltfile (devstack.tiltfile) and followed by the node's overrides
(NODE_OVERRIDES; tests/cluster/test_tilt_values.py holds them to that list). The differences
the local node needs: the Ingresses name the node's controller (Traefik, class
`traefik`) instead of ingress-nginx, and the API's Service is also a NodePort on loopback;
Grafana is left out (AGPL: never built here); images are the ones `make images` built, already
inside the node, never pulled.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from devstack import cluster_kafka
from devstack.cluster import API_NODE_PORT, PROMETHEUS_NODE_PORT, LocalCluster
from devstack.node import ingress
from devstack.node.network import NODE_IP
from devstack.process import ComponentStartError
from devstack.tiltfile import HelmCall, helm_calls
from devstack.tools import REPO_ROOT, tool

ProgressFn = Callable[[str], None]
NAMESPACE = "lending"
OPERATOR_NAMESPACE = "prequal-system"
RELEASE = "prequal"
OPERATOR_RELEASE = "loan-operator"
KEY_DISTRIBUTION_SECONDS = 20
OPERATOR_CHART = "charts/loan-operator"
PLATFORM_CHART = "charts/loan-prequal"
# The keys the node sets over the Tiltfile's values, and why (the only allowed divergence).
NODE_OVERRIDES = {
    OPERATOR_CHART: {
        "image.repository": "the image `make images` built under the Tiltfile's tag",
        "image.tag": "the image `make images` built under the Tiltfile's tag",
        "keyDistributionSeconds": "one node syncs mounted Secrets in seconds",
    },
    PLATFORM_CHART: {
        "image.repository": "the runtime image (the Tiltfile builds the dev target to live-update)",
        "image.tag": "the runtime image (the Tiltfile builds the dev target to live-update)",
        "image.pullPolicy": "images are in the node, never pulled",
        "tests.enabled": "the tier runs `helm test` (Tilt leaves the test pod out)",
        "api.ingress.className": "Traefik instead of ingress-nginx (not built here)",
        "networkPolicy.apiIngressFrom[0].namespaceSelector.matchLabels"
        ".kubernetes\\.io/metadata\\.name": "the ingress controller's namespace",
        "api.service.type": "the API also on a loopback NodePort",
        "api.service.nodePort": "the API also on a loopback NodePort",
        "api.auth.issuer": "the node's Hydra",
    },
}


def watched_namespaces(sets: Sequence[str]) -> list[str]:
    """The namespaces a `watchNamespaces={a,b}` --set names (none: the operator watches all)."""
    for item in sets:
        key, _, value = item.partition("=")
        if key == "watchNamespaces":
            return [n.strip() for n in value.strip("{}").split(",") if n.strip()]
    return []


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def split_image(image: str) -> tuple[str, str]:
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


@dataclass
class Workloads:
    cluster: LocalCluster
    images: Mapping[str, str]

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [tool("helm"), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise ComponentStartError(
                f"helm {' '.join(args[:3])} failed: {result.stderr.strip() or result.stdout}\n"
                f"Look at `kubectl --kubeconfig {self.cluster.kubeconfig} get pods -A` and "
                f"`kubectl describe` / `logs` of what is not Ready."
            )
        return result

    def helm_json(self, *args: str) -> Any:
        return json.loads(self.helm(*args, "--output=json").stdout)

    def install(self, progress: ProgressFn, platform_values: Sequence[str] = ()) -> None:
        kubectl = self.cluster.kubectl
        progress("generating the dev Kafka's CA, certificate and SCRAM Secrets (never committed)")
        cluster_kafka.install(kubectl)
        progress("applying manifests/dev (PostgreSQL, Kafka) and manifests/monitoring (Prometheus)")
        kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "dev"))
        kubectl("apply", "-f", "-", stdin=self.monitoring())
        for what in ("statefulset/postgres", "statefulset/kafka"):
            kubectl("-n", NAMESPACE, "rollout", "status", what, "--timeout=300s")
        progress("helm install loan-operator (prequal-system)")
        self.install_operator()
        progress("helm install prequal (lending): migrations, API, publisher, consumers")
        self.install_platform(*platform_values)
        kubectl("-n", "monitoring", "rollout", "status", "deployment/prometheus", "--timeout=120s")

    def tilt(self, chart: str) -> HelmCall:
        return helm_calls()[chart]

    def operator_values(self) -> list[str]:
        repository, tag = split_image(self.images["PREQUAL_OPERATOR_DEV_IMAGE"])
        return [
            *self.tilt(OPERATOR_CHART).helm_args(),
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            # One node, whose kubelet syncs mounted Secrets within seconds: a key rotation's
            # distribution phase need not wait the three minutes a real cluster gets.
            f"--set=keyDistributionSeconds={KEY_DISTRIBUTION_SECONDS}",
        ]

    def platform_values(self, *extra: str) -> list[str]:
        repository, tag = split_image(self.images["PREQUAL_IMAGE"])
        return [
            *self.tilt(PLATFORM_CHART).helm_args(),
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            "--set=image.pullPolicy=IfNotPresent",
            "--set=tests.enabled=true",
            f"--set=api.ingress.className={ingress.CLASS_NAME}",
            # The API admits its clients from the ingress controller's namespace.
            "--set=networkPolicy.apiIngressFrom[0].namespaceSelector.matchLabels"
            f".kubernetes\\.io/metadata\\.name={ingress.NAMESPACE}",
            "--set=api.service.type=NodePort",
            f"--set=api.service.nodePort={API_NODE_PORT}",
            *self.auth_values(),
            *extra,
        ]

    def auth_values(self) -> list[str]:
        """The API trusts the local Hydra; its pods reach it on the bridge address."""
        hydra = self.cluster.hydra
        if hydra is None:
            raise ComponentStartError("the identity provider is not running: start the cluster")
        return [
            f"--set=api.auth.issuer={hydra.issuer}",
            # Its JWKS, on the host's bridge address: the API's NetworkPolicy lets it out there.
            f"--set=networkPolicy.identityProvider.to[0].ipBlock.cidr={NODE_IP}/32",
            f"--set=networkPolicy.identityProvider.ports={{{hydra.public_port}}}",
        ]

    def install_operator(self) -> None:
        # With watchNamespaces the chart puts a Role in each watched namespace, and Helm creates
        # only the release's own: the others must exist first (manifests/dev makes `lending`
        # already; this keeps install_operator right on its own).
        for namespace in watched_namespaces(self.tilt(OPERATOR_CHART).sets):
            self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_namespace(namespace)))
        self.helm(
            "upgrade",
            "--install",
            OPERATOR_RELEASE,
            str(REPO_ROOT / "charts" / "loan-operator"),
            f"--namespace={OPERATOR_NAMESPACE}",
            "--create-namespace",
            *self.operator_values(),
            "--wait",
            "--timeout=5m",
        )

    def install_platform(self, *extra: str) -> None:
        self.helm(
            "upgrade",
            "--install",
            RELEASE,
            str(REPO_ROOT / "charts" / "loan-prequal"),
            f"--namespace={NAMESPACE}",
            *self.platform_values(*extra),
            "--wait",
            "--wait-for-jobs",
            "--timeout=10m",
        )

    def monitoring(self) -> str:
        """manifests/monitoring without Grafana (and its route), its Ingress on the node's class,
        plus a NodePort Service for Prometheus."""
        rendered = self.cluster.kubectl(
            "kustomize",
            "--load-restrictor=LoadRestrictionsNone",
            str(REPO_ROOT / "manifests" / "monitoring"),
        ).stdout
        objects = [obj for obj in yaml.safe_load_all(rendered) if obj and not _is_grafana(obj)]
        for obj in objects:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "prometheus":
                container = obj["spec"]["template"]["spec"]["containers"][0]
                container["image"] = self.images["PROMETHEUS_IMAGE"]
            if obj["kind"] == "Ingress":
                obj["spec"]["ingressClassName"] = ingress.CLASS_NAME
                for rule in obj["spec"]["rules"]:
                    paths = rule["http"]["paths"]
                    rule["http"]["paths"] = [p for p in paths if "grafana" not in p["path"]]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "prometheus-node-port", "namespace": "monitoring"},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app.kubernetes.io/name": "prometheus"},
                    "ports": [
                        {
                            "name": "web",
                            "port": 9090,
                            "targetPort": "web",
                            "nodePort": PROMETHEUS_NODE_PORT,
                        }
                    ],
                },
            }
        )
        return yaml.safe_dump_all(objects, sort_keys=False)


def _is_grafana(obj: dict[str, Any]) -> bool:
    return obj["kind"] in {"Deployment", "Service"} and "grafana" in obj["metadata"]["name"]
