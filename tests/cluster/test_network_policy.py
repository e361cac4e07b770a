"""The charts' NetworkPolicies are enforced on the node (kube-network-policies, built here):
what a policy allows connects, what no policy allows is dropped.

Each probe is a TCP connect from inside a pod (kubectl exec, Python's socket), so the packet
takes the pod's own network path through the agent's NFQUEUE, as the platform's traffic does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from devstack.node import policy
from devstack.workloads import NAMESPACE, RELEASE
from tests.cluster.conftest import RunningCluster

CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
    "except OSError as error:\n"
    "    print(type(error).__name__); sys.exit(1)\n"
    "print('connected')\n"
)
PROBE = "policy-probe"


@pytest.fixture(autouse=True)
def _agent(cluster: RunningCluster) -> None:
    # Part of every node: its image is built by `make images` like CoreDNS.
    assert cluster.cluster.policies_enforced


def _connects(cluster: RunningCluster, pod: str, host: str, port: int) -> bool:
    done = cluster.cluster.kubectl(
        "-n", NAMESPACE, "exec", pod, "--", "python", "-c", CONNECT, host, str(port), check=False
    )
    assert done.stdout.strip() in {"connected", "TimeoutError", "ConnectionRefusedError"}, (
        done.stdout + done.stderr
    )
    return done.returncode == 0


def _api_pod(cluster: RunningCluster) -> str:
    pods = cluster.json("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=api")[
        "items"
    ]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    return str(running[0]["metadata"]["name"])


@pytest.fixture(scope="module")
def probe(cluster: RunningCluster) -> Iterator[str]:
    """A pod with none of the release's labels, on the platform's image (it has Python)."""
    image = cluster.workloads.images["PREQUAL_IMAGE"]
    cluster.cluster.kubectl(
        "-n", NAMESPACE, "run", PROBE, f"--image={image}", "--image-pull-policy=Never",
        "--restart=Never", "--command", "--", "python", "-c", "import time; time.sleep(600)",
    )  # fmt: skip
    cluster.kubectl(
        "-n", NAMESPACE, "wait", "--for=condition=Ready", f"pod/{PROBE}", "--timeout=60s"
    )
    yield PROBE
    cluster.cluster.kubectl(
        "-n", NAMESPACE, "delete", "pod", PROBE, "--wait=false", "--grace-period=0", check=False
    )


def test_the_policy_agent_runs_and_owns_its_table(cluster: RunningCluster) -> None:
    agent = cluster.json("-n", policy.NAMESPACE, "get", "daemonset", policy.NAME)
    assert agent["status"].get("numberReady") == 1, agent["status"]
    assert policy.table_exists()
    rules = subprocess.run(
        ["nft", "list", "table", "inet", policy.NFT_TABLE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "NFQUEUE" in rules or "queue" in rules, rules


def test_an_allowed_path_connects(cluster: RunningCluster) -> None:
    # The API's policy lets it reach PostgreSQL.
    assert _connects(cluster, _api_pod(cluster), "postgres", 5432)


def test_dns_is_allowed_on_the_port_the_policy_names(cluster: RunningCluster) -> None:
    # NetworkPolicy matches the pod's port after the Service's DNAT: CoreDNS must serve on the
    # port the chart's dns policy allows (53), as on a real cluster.
    dns_policy = cluster.json("-n", NAMESPACE, "get", "networkpolicy", f"{RELEASE}-dns")
    allowed = {(p["protocol"], p["port"]) for p in dns_policy["spec"]["egress"][0]["ports"]}
    slices = cluster.json(
        "-n", "kube-system", "get", "endpointslices", "-l", "kubernetes.io/service-name=kube-dns"
    )["items"]
    served = {(p["protocol"], p["port"]) for s in slices for p in s["ports"]}
    assert served == allowed == {("UDP", 53), ("TCP", 53)}
    # A release pod resolves a name through it (Kafka's: a host its policy forbids connecting to).
    resolved = cluster.kubectl(
        "-n", NAMESPACE, "exec", _api_pod(cluster), "--", "python", "-c",
        "import socket; print(socket.gethostbyname('kafka.lending.svc.cluster.local'))",
    ).strip()  # fmt: skip
    assert resolved == cluster.json("-n", NAMESPACE, "get", "service", "kafka")["spec"]["clusterIP"]


def test_a_path_no_policy_allows_is_dropped(cluster: RunningCluster, probe: str) -> None:
    api = cluster.json("-n", NAMESPACE, "get", "pods", _api_pod(cluster))
    api_ip = api["status"]["podIP"]
    # The probe's network works (PostgreSQL is no release pod: no policy selects it) ...
    assert _connects(cluster, probe, "postgres", 5432)
    # ... but the API admits only the ingress controller, `helm test` and Prometheus.
    assert not _connects(cluster, probe, api_ip, 8000)
    # And the API itself may not open a connection its policy does not list: Kafka.
    assert not _connects(cluster, _api_pod(cluster), "kafka", 9092)
    # The same API pod answers through the Ingress (allowed from the controller's namespace).
    with cluster.http() as http:
        assert http.get(f"/applications/{RELEASE}-unknown/status").status_code in {404, 422}
