"""The node itself: registered and Ready, pods on the bridge, cluster DNS answering."""

from __future__ import annotations

import pytest

from devstack.node.kubelet import NODE_NAME
from devstack.node.network import NODE_IP
from tests.cluster.conftest import RunningCluster


# The first test pays for the images (cold: ~20 min), the node and both charts.
@pytest.mark.timeout(3600)
def test_the_node_is_ready_and_runs_containerd(cluster: RunningCluster) -> None:
    node = cluster.json("get", "node", NODE_NAME)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == NODE_IP
    # No taint left by the node lifecycle controller (not-ready, unreachable).
    assert not node["spec"].get("taints")


def test_pods_get_addresses_on_the_bridge_and_resolve_cluster_names(
    cluster: RunningCluster,
) -> None:
    pods = cluster.json("-n", "lending", "get", "pods", "-l", "app.kubernetes.io/component=api")
    pod = pods["items"][0]
    assert pod["status"]["podIP"].startswith("10.244.0.")
    # CoreDNS through the kube-dns Service, from inside a pod of the platform.
    resolved = cluster.kubectl(
        "-n",
        "lending",
        "exec",
        pod["metadata"]["name"],
        "--",
        "python",
        "-c",
        "import socket; print(socket.gethostbyname('kafka.lending.svc.cluster.local'))",
    ).strip()
    service = cluster.json("-n", "lending", "get", "service", "kafka")
    assert resolved == service["spec"]["clusterIP"]
