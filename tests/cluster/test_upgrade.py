"""`helm upgrade` with a raised keyVersion: every pod rolls and no application is lost."""

from __future__ import annotations

from devstack.workloads import NAMESPACE
from tests.applications import application
from tests.cluster.conftest import RunningCluster


def _pod_uids(cluster: RunningCluster) -> dict[str, str]:
    """uid -> key version of every running pod of the release (terminating ones excluded)."""
    pods = cluster.json(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/part-of=loan-prequal"
    )["items"]
    return {
        p["metadata"]["uid"]: p["metadata"].get("annotations", {}).get("prequal.dev/key-version")
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def test_raising_key_version_rolls_every_pod_and_loses_no_application(
    cluster: RunningCluster,
) -> None:
    before = _pod_uids(cluster)
    with cluster.http() as http:
        earlier = [
            http.post("/applications", json=application()).json()["application_id"]
            for _ in range(3)
        ]
        cluster.upgrade("--set=pipeline.encryption.keyVersion=2")
        after = _pod_uids(cluster)
        later = [
            http.post("/applications", json=application()).json()["application_id"]
            for _ in range(3)
        ]
        statuses = [cluster.final_status(http, i, timeout=180)["status"] for i in earlier + later]

    assert set(before.values()) == {"1"}
    assert after
    assert set(after.values()) == {"2"}, after
    assert not set(before) & set(after), "some pod kept running through the key rotation"
    assert len(statuses) == 6
    status = cluster.json("-n", NAMESPACE, "get", "loanpipeline")["items"][0]["status"]
    messages = [c.get("message", "") for c in status["conditions"]]
    assert any("keys v2 active" in m for m in messages), status
