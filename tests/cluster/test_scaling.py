"""Lag scaling on the real node: the operator starts consumer pods on lag and stops them after.

The tier installs the decision consumer with minReplicas 0 (conftest.SCALING_VALUES): idle,
its Deployment has no pod; applications make its group lag, the operator scales it up, a real
pod starts, drains the lag, and is stopped again once the stabilization window has passed.
"""

from __future__ import annotations

from devstack.workloads import NAMESPACE, RELEASE
from tests.applications import application
from tests.cluster.conftest import RunningCluster
from tests.polling import wait_until

DECISION = f"{RELEASE}-decision"


def _pods(cluster: RunningCluster) -> list[str]:
    pods = cluster.json(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component=decision"
    )["items"]
    return [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]


def _replicas(cluster: RunningCluster) -> int:
    return int(cluster.json("-n", NAMESPACE, "get", "deployment", DECISION)["spec"]["replicas"])


def test_lag_starts_consumer_pods_and_their_absence_stops_them(cluster: RunningCluster) -> None:
    wait_until(lambda: _replicas(cluster) == 0 and not _pods(cluster), timeout=120, interval=1)

    with cluster.http() as http:
        ids = [
            http.post("/applications", json=application()).json()["application_id"]
            for _ in range(5)
        ]
        started = wait_until(lambda: _pods(cluster), timeout=90, interval=1)
        assert _replicas(cluster) >= 1
        for application_id in ids:
            cluster.final_status(http, application_id, timeout=120)

    assert started
    wait_until(lambda: _replicas(cluster) == 0 and not _pods(cluster), timeout=120, interval=1)
