"""What `make cluster` installs on the node: manifests/dev, manifests/monitoring and both charts.

The same objects and values the Tiltfile applies on kind (ci/kind-values.yaml), with three
differences the local node needs: no Ingress controller, so the API's Service is a NodePort
that answers on loopback; Grafana is left out (AGPL: never built here); images are the ones
`make images` built, already inside the node, never pulled.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from devstack.cluster import API_NODE_PORT, PROMETHEUS_NODE_PORT, LocalCluster
from devstack.process import ComponentStartError
from devstack.tools import REPO_ROOT, tool

ProgressFn = Callable[[str], None]
NAMESPACE = "lending"
OPERATOR_NAMESPACE = "prequal-system"
RELEASE = "prequal"
OPERATOR_RELEASE = "loan-operator"
KEY_DISTRIBUTION_SECONDS = 20


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

    def install(self, progress: ProgressFn, platform_values: Sequence[str] = ()) -> None:
        kubectl = self.cluster.kubectl
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

    def operator_values(self) -> list[str]:
        repository, tag = split_image(self.images["PREQUAL_IMAGE"])
        return [
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            # One node, whose kubelet syncs mounted Secrets within seconds: a key rotation's
            # distribution phase need not wait the three minutes a real cluster gets.
            f"--set=keyDistributionSeconds={KEY_DISTRIBUTION_SECONDS}",
            # The images are in the node, loaded without a registry: never ask one.
            "--set=image.pullPolicy=IfNotPresent",
        ]

    def platform_values(self, *extra: str) -> list[str]:
        repository, tag = split_image(self.images["PREQUAL_IMAGE"])
        return [
            f"--values={REPO_ROOT / 'charts' / 'loan-prequal' / 'ci' / 'kind-values.yaml'}",
            f"--set=fullnameOverride={RELEASE}",
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            "--set=image.pullPolicy=IfNotPresent",
            "--set=api.ingress.enabled=false",
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
        return [f"--set=api.auth.issuer={hydra.issuer}"]

    def install_operator(self) -> None:
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
        """manifests/monitoring without Grafana, plus a NodePort Service for Prometheus."""
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
