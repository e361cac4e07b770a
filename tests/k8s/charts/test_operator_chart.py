"""The operator chart ships the operator's own CRD and exactly the operator's own RBAC."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import yaml

from .conftest import ANY_ADDRESS, CHARTS, OPERATOR_RBAC, by_kind, documents, helm, render

CHART = CHARTS / "loan-operator"


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Rules as (apiGroup, resource, verb) triples: equal sets grant exactly the same."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def test_crd_is_the_canonical_file_through_a_symlink_helm_follows(
    loanpipeline_crd: Path, tmp_path: Path
) -> None:
    link = CHART / "crds" / loanpipeline_crd.name
    assert link.is_symlink()
    assert link.resolve() == loanpipeline_crd.resolve()
    shown = helm("show", "crds", str(CHART))
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == yaml.safe_load(loanpipeline_crd.read_text())
    # A packaged chart carries the file's content, not a dangling link.
    packaged = helm("package", str(CHART), "-d", str(tmp_path))
    assert packaged.returncode == 0, packaged.stderr
    [archive] = tmp_path.glob("loan-operator-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"loan-operator/crds/{loanpipeline_crd.name}")
        assert member.isfile()
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert extracted.read() == loanpipeline_crd.read_bytes()


def test_cluster_role_grants_exactly_the_operators_rbac_manifest() -> None:
    assert OPERATOR_RBAC.exists(), "manifests/operator/rbac.yaml is the source of truth"
    [source] = by_kind(documents(OPERATOR_RBAC.read_text()), "ClusterRole")
    [chart_role] = by_kind(documents(render("loan-operator")), "ClusterRole")
    assert _grants(chart_role["rules"]) == _grants(source["rules"])
    assert not any("*" in triple for triple in _grants(chart_role["rules"]))
    assert not any(
        verb in ("delete", "deletecollection", "escalate", "bind", "impersonate")
        for _, _, verb in _grants(chart_role["rules"])
    )


def test_with_watch_namespaces_the_operator_gets_namespaced_roles_and_nothing_cluster_wide() -> (
    None
):
    docs = documents(
        render(
            "loan-operator",
            "--set",
            "watchNamespaces={lending,retail}",
            namespace="prequal-system",
        )
    )
    assert by_kind(docs, "ClusterRole") == by_kind(docs, "ClusterRoleBinding") == []
    roles = {role["metadata"]["namespace"]: role for role in by_kind(docs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(docs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"lending", "retail"}
    [source] = by_kind(documents(OPERATOR_RBAC.read_text()), "ClusterRole")
    [account] = by_kind(docs, "ServiceAccount")
    for namespace, role in roles.items():
        assert _grants(role["rules"]) == _grants(source["rules"]), namespace
        binding = bindings[namespace]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": "prequal-system",
            }
        ]


def test_binding_names_the_deployments_service_account() -> None:
    docs = documents(render("loan-operator", namespace="prequal-system"))
    [binding] = by_kind(docs, "ClusterRoleBinding")
    [deployment] = by_kind(docs, "Deployment")
    [account] = by_kind(docs, "ServiceAccount")
    [role] = by_kind(docs, "ClusterRole")
    pod = deployment["spec"]["template"]["spec"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": "prequal-system",
        }
    ]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_operator_runs_one_replica_that_never_overlaps_and_serves_metrics_off_loopback() -> None:
    [deployment] = by_kind(documents(render("loan-operator")), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["loan-operator"]
    assert "--standalone" in container["args"]
    assert "--all-namespaces" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["METRICS_HOST"] == ANY_ADDRESS
    assert env["METRICS_PORT"] == "9104"

    scoped = by_kind(
        documents(render("loan-operator", "--set", "watchNamespaces={tenant-a,tenant-b}")),
        "Deployment",
    )
    args = scoped[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=tenant-a",
        "--namespace=tenant-b",
    ]
