"""Both charts installed for real: probes pass, the operator runs in-cluster, requests flow."""

from __future__ import annotations

import re

import httpx

from devstack.workloads import NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_RELEASE, RELEASE
from tests.applications import application
from tests.cluster.conftest import FINAL, RunningCluster
from tests.polling import wait_until


def _not_ready(cluster: RunningCluster, namespace: str) -> list[str]:
    pods = cluster.json("-n", namespace, "get", "pods")["items"]
    waiting = []
    for pod in pods:
        if pod["status"].get("phase") == "Succeeded" or pod["metadata"].get("deletionTimestamp"):
            continue  # done, or going away (the operator scales the idle decision consumer to 0)
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") != "True":
            waiting.append(pod["metadata"]["name"])
    return waiting


def test_every_pod_is_ready_through_its_own_probes(cluster: RunningCluster) -> None:
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE, "monitoring", "kube-system"):
        # A pod the lag scaler started a moment ago gets the time its probes need.
        wait_until(
            lambda ns=namespace: _not_ready(cluster, ns) == [],
            timeout=120,
            interval=2,
            what=f"every pod in {namespace} Ready (at first: {_not_ready(cluster, namespace)})",
        )
    # Every container of the platform declares the probes that made it Ready.
    deployments = cluster.json("-n", NAMESPACE, "get", "deployments")["items"]
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container, deployment["metadata"]["name"]


def test_the_migrations_hook_completed(cluster: RunningCluster) -> None:
    # helm --wait-for-jobs returned, and the hook's delete policy (hook-succeeded) removed it.
    history = cluster.helm("history", RELEASE, f"--namespace={NAMESPACE}", "-o", "json").stdout
    assert '"status":"deployed"' in history.replace(" ", "")
    jobs = cluster.json("-n", NAMESPACE, "get", "jobs")["items"]
    assert [j["metadata"]["name"] for j in jobs if "migrations" in j["metadata"]["name"]] == []


def test_the_operator_runs_in_cluster_under_its_own_service_account(
    cluster: RunningCluster,
) -> None:
    pods = cluster.json("-n", OPERATOR_NAMESPACE, "get", "pods")["items"]
    assert len(pods) == 1
    assert pods[0]["spec"]["serviceAccountName"] == OPERATOR_RELEASE
    logs = cluster.kubectl("-n", OPERATOR_NAMESPACE, "logs", pods[0]["metadata"]["name"])
    # An answer of 403 (urllib3 logs `HTTP/1.1" 403`), not a timestamp's milliseconds.
    assert not re.search(r'HTTP/1\.1\\?" 403\b|Forbidden', logs), logs[-2000:]
    assert "Forbidden" not in logs


def test_the_loan_pipeline_goes_ready(cluster: RunningCluster) -> None:
    pipeline = cluster.json("-n", NAMESPACE, "get", "loanpipeline", RELEASE)
    ready = {c["type"]: c["status"] for c in pipeline["status"]["conditions"]}
    assert ready["Ready"] == "True", pipeline["status"]


def test_an_application_posted_to_the_node_port_ends_in_a_final_status(
    cluster: RunningCluster,
) -> None:
    with cluster.http() as http:
        submitted = [http.post("/applications", json=application()) for _ in range(3)]
        assert [r.status_code for r in submitted] == [202, 202, 202]
        for response in submitted:
            body = cluster.final_status(http, response.json()["application_id"])
            assert body["status"] in FINAL
            assert body["credit_score"] is not None


def test_helm_test_passes(cluster: RunningCluster) -> None:
    result = cluster.helm("test", RELEASE, f"--namespace={NAMESPACE}", "--timeout=120s")
    assert "Phase:          Succeeded" in result.stdout


def test_prometheus_on_loopback_scrapes_the_platform(cluster: RunningCluster) -> None:
    url = cluster.cluster.endpoints()["PROMETHEUS_URL"]

    def healthy_jobs() -> set[str]:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {t["labels"].get("job", "") for t in targets if t["health"] == "up"}

    wait_until(lambda: {"api", "operator"} <= healthy_jobs(), timeout=90, interval=2)
