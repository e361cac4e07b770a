"""kind on this machine (opt-in: PREQUAL_KIND=1, docs/cluster.md "## kind").

The project's kind-config.yaml, unchanged, with the node image `make kind-image` builds here
(no registry is reachable) and dockerd's default runtime switched, for the test's duration, to
the wrapper that drops CAP_SYS_RESOURCE (toolchain/kind/dockerd-runtime.sh): the cluster comes
up, a Deployment's pods get addresses from the node image's CNI and become Ready, and
`kind delete cluster` removes the node container. Not in `make test`'s default run: it
reconfigures the shared dockerd and takes minutes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_IMAGE = "prequal.local/kind-node:{}"
CLUSTER = "prequal"  # kind-config.yaml's name
POD_SUBNET = ipaddress.ip_network("10.244.0.0/16")  # kind's default podSubnet
DOCKER_PATH = "/usr/bin"  # Debian's docker client first: kind calls `docker` by name

pytestmark = pytest.mark.skipif(
    os.environ.get("PREQUAL_KIND") != "1",
    reason="opt-in: PREQUAL_KIND=1 (builds a kind node image, switches dockerd's default runtime)",
)

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
        - name: hello
          image: prequal.local/kind-cni:bookworm
          imagePullPolicy: Never
          command: [sleep, infinity]
          readinessProbe:
            exec: {command: [test, -d, /proc/1]}
            periodSeconds: 2
          securityContext:
            runAsNonRoot: true
            runAsUser: 10001
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
"""


def _k8s_version() -> str:
    for line in (ROOT / "toolchain" / "versions.env").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("K8S_VERSION missing from toolchain/versions.env")


def _run(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, f"{' '.join(args[:4])} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tools = ROOT / ".tools" / "bin"
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    return {
        **os.environ,
        "PATH": f"{DOCKER_PATH}:{tools}:{os.environ['PATH']}",
        "KUBECONFIG": str(kubeconfig),
    }


@pytest.fixture(scope="module")
def kind_cluster(env: dict[str, str]) -> Iterator[str]:
    """`make kind-image`, the wrapper as dockerd's default runtime, `kind create cluster`;
    afterwards the cluster deleted and dockerd's configuration restored, also on failure."""
    image = NODE_IMAGE.format(_k8s_version())
    _run(sys.executable, str(ROOT / "images" / "kind_node.py"), env=env)
    switch = str(ROOT / "toolchain" / "kind" / "dockerd-runtime.sh")
    _run(switch, "on", env=env)
    try:
        _run(
            "kind", "create", "cluster", "--config", str(ROOT / "kind-config.yaml"),
            "--image", image, "--wait", "300s", env=env,
        )  # fmt: skip
        yield image
    finally:
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], env=env, check=False)
        _run(switch, "off", env=env)


def _json(env: dict[str, str], *args: str) -> Any:
    return json.loads(_run("kubectl", *args, "-o", "json", env=env))


@pytest.mark.timeout(1800)
def test_kind_config_comes_up_and_runs_a_deployment(kind_cluster: str, env: dict[str, str]) -> None:
    (node,) = _json(env, "get", "nodes")["items"]
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["metadata"]["labels"]["ingress-ready"] == "true"  # kind-config.yaml's label
    assert node["status"]["nodeInfo"]["kubeletVersion"] == _k8s_version()

    _run("kubectl", "apply", "-f", "-", env=env, stdin=DEPLOYMENT)
    _run("kubectl", "rollout", "status", "deployment/hello", "--timeout=300s", env=env)
    pods = _json(env, "get", "pods", "-l", "app=hello")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])
        assert ipaddress.ip_address(pod["status"]["podIP"]) in POD_SUBNET

    # kubeadm's CoreDNS (our build, tagged as kubeadm names it) serves the cluster
    _run("kubectl", "-n", "kube-system", "rollout", "status", "deployment/coredns",
         "--timeout=300s", env=env)  # fmt: skip


def test_kind_delete_removes_the_node_container(kind_cluster: str, env: dict[str, str]) -> None:
    assert f"{CLUSTER}-control-plane" in _run("docker", "ps", "--format", "{{.Names}}", env=env)
    _run("kind", "delete", "cluster", "--name", CLUSTER, env=env)
    left = _run("docker", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}",
                "--format", "{{.Names}}", env=env)  # fmt: skip
    assert left.strip() == ""
