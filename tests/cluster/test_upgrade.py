"""`helm upgrade` with a raised keyVersion: every pod rolls and no application is lost."""

from __future__ import annotations

from typing import Any

from devstack.workloads import KEY_DISTRIBUTION_SECONDS, NAMESPACE
from tests.applications import application
from tests.cluster.conftest import RunningCluster
from tests.polling import wait_until


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

    # Two-phase rotation: v2 is distributed first and made active only after the
    # distribution time the operator was installed with.
    def pipeline_status() -> dict[str, Any]:
        status: dict[str, Any] = cluster.json("-n", NAMESPACE, "get", "loanpipeline")["items"][0][
            "status"
        ]
        return status

    assert pipeline_status()["keyRotation"]["keyId"] == "v2"
    wait_until(
        lambda: pipeline_status()["keyRotation"]["phase"] == "Active",
        timeout=KEY_DISTRIBUTION_SECONDS + 60,
    )
