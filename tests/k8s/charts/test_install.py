"""Both charts installed into the real API server (helm install, no --wait: there is no
kubelet), then the operator run as a real process under the chart's own ServiceAccount token,
reconciling the LoanPipeline the platform chart rendered."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import ApiException

from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess
from devstack.tools import tool
from tests.polling import poll, wait_until

from .conftest import CHARTS, MONITORING_CRDS, documents, helm, run

T = TypeVar("T")
RELEASE = "rel"
OPERATOR_SA = "rel-loan-operator"
PIPELINE = "rel-loan-prequal"


@dataclass
class Installed:
    plane: ControlPlane
    api: client.ApiClient
    operator_ns: str
    platform_ns: str
    topic_prefix: str

    def kubectl(self, *args: str, stdin: str | None = None) -> Any:
        return run(tool("kubectl"), "--kubeconfig", str(self.plane.kubeconfig), *args, stdin=stdin)

    def can_i(self, verb: str, resource: str, namespace: str | None = None) -> bool:
        """`kubectl auth can-i` as the operator's ServiceAccount (`resource/subresource`)."""
        where = ["-n", namespace] if namespace else ["--all-namespaces"]
        resource, _, subresource = resource.partition("/")
        answer = self.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            *where,
            *([f"--subresource={subresource}"] if subresource else []),
            f"--as=system:serviceaccount:{self.operator_ns}:{OPERATOR_SA}",
        )
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return bool(answer.stdout.strip() == "yes")


def _apply_crds(installed: Installed, files: list[Path]) -> None:
    for path in files:
        applied = installed.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        assert applied.returncode == 0, applied.stderr
    ext = client.ApiextensionsV1Api(installed.api)

    def established() -> bool:
        for path in files:
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    wait_until(established, 30, interval=0.5, what="the Prometheus Operator CRDs to be established")


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane, kafka: Kafka) -> Iterator[Installed]:
    suffix = uuid.uuid4().hex[:6]
    with config.new_client_from_config(str(control_plane.kubeconfig)) as api:
        target = Installed(control_plane, api, f"ops-{suffix}", f"lend-{suffix}", f"t{suffix}.")
        _apply_crds(target, MONITORING_CRDS)
        kube = ["--kubeconfig", str(control_plane.kubeconfig)]
        core = client.CoreV1Api(api)
        # The watched namespace first: the operator chart puts its Role there (Helm creates
        # only the release's own namespace), as docs/kubernetes.md tells users to.
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=target.platform_ns))
        )
        operator = helm(
            "install",
            RELEASE,
            str(CHARTS / "loan-operator"),
            *kube,
            "-n",
            target.operator_ns,
            "--create-namespace",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            f"watchNamespaces={{{target.platform_ns}}}",
        )
        assert operator.returncode == 0, operator.stderr
        # The database Secret exists before the install (the migrations hook needs it). The URL
        # carries no password: nothing connects to it here.
        core.create_namespaced_secret(
            target.platform_ns,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="prequal-db"),
                string_data={"url": f"postgresql://prequal@{LOOPBACK}:5432/prequal"},
            ),
        )
        # --no-hooks: the migrations Job could never finish without a kubelet, and helm waits
        # for hooks; test_migrations_hook_is_accepted_by_the_api_server covers the Job.
        platform = helm(
            "install",
            RELEASE,
            str(CHARTS / "loan-prequal"),
            *kube,
            "-n",
            target.platform_ns,
            "--no-hooks",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            f"pipeline.kafka.bootstrapServers={kafka.bootstrap}",
            "--set",
            f"pipeline.kafka.topicPrefix={target.topic_prefix}",
            "--set",
            "consumers.credit.autoscaling.minReplicas=2",
            "--set",
            "consumers.credit.autoscaling.pollingIntervalSeconds=2",
            "--set",
            "consumers.decision.autoscaling.pollingIntervalSeconds=2",
        )
        assert platform.returncode == 0, platform.stderr
        yield target
        # Leave nothing for other tests' cluster-wide operators to reconcile.
        for namespace in (target.platform_ns, target.operator_ns):
            helm("uninstall", RELEASE, *kube, "-n", namespace, "--no-hooks")
            target.kubectl("delete", "namespace", namespace, "--wait=false")


def test_both_charts_install_with_every_object_stored(installed: Installed) -> None:
    kube = ["--kubeconfig", str(installed.plane.kubeconfig)]
    for namespace in (installed.operator_ns, installed.platform_ns):
        status = helm("status", RELEASE, *kube, "-n", namespace, "-o", "json")
        assert json.loads(status.stdout)["info"]["status"] == "deployed"
    listed = installed.kubectl(
        "get",
        "deployments,services,networkpolicies,poddisruptionbudgets,configmaps,"
        "servicemonitors,prometheusrules,loanpipelines",
        "-n",
        installed.platform_ns,
        "-o",
        "json",
    )
    assert listed.returncode == 0, listed.stderr
    names: dict[str, set[str]] = {}
    for item in json.loads(listed.stdout)["items"]:
        names.setdefault(item["kind"], set()).add(item["metadata"]["name"])
    workloads = {f"{PIPELINE}-{c}" for c in ("api", "publisher", "credit", "decision", "webhooks")}
    assert names["Deployment"] == workloads
    assert names["Service"] == workloads
    assert names["ServiceMonitor"] == workloads
    assert names["PodDisruptionBudget"] == workloads
    assert names["PrometheusRule"] == {PIPELINE}
    assert names["LoanPipeline"] == {PIPELINE}
    assert f"{PIPELINE}-default-deny" in names["NetworkPolicy"]
    assert {f"{PIPELINE}-dashboard-{d}" for d in ("api", "kafka", "database", "business")} <= names[
        "ConfigMap"
    ]
    crd = installed.kubectl("get", "crd", "loanpipelines.prequal.dev")
    assert crd.returncode == 0, crd.stderr


def test_migrations_hook_is_accepted_by_the_api_server(installed: Installed) -> None:
    rendered = helm(
        "template",
        RELEASE,
        str(CHARTS / "loan-prequal"),
        "-n",
        installed.platform_ns,
        "--show-only",
        "templates/migrations/job.yaml",
    )
    assert rendered.returncode == 0, rendered.stderr
    created = installed.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        installed.platform_ns,
        "-o",
        "json",
        "-f",
        "-",
        stdin=rendered.stdout,
    )
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)
    assert job["kind"] == "Job"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "prequalctl",
        "db",
        "upgrade",
    ]


# What the operator does, in the namespace it watches.
NEEDED = [
    ("list", "loanpipelines.prequal.dev"),
    ("watch", "loanpipelines.prequal.dev"),
    ("patch", "loanpipelines.prequal.dev"),  # kopf strips an earlier version's finalizer
    ("patch", "loanpipelines.prequal.dev/status"),
    ("create", "events"),
    ("get", "secrets"),
    ("create", "secrets"),
    ("patch", "secrets"),
    ("get", "configmaps"),
    ("create", "configmaps"),
    ("patch", "configmaps"),
    ("get", "deployments.apps/scale"),
    ("patch", "deployments.apps/scale"),
]
# Never, even where it watches.
NOT_NEEDED = [
    ("delete", "loanpipelines.prequal.dev"),
    ("create", "loanpipelines.prequal.dev"),
    ("list", "secrets"),
    ("delete", "secrets"),
    ("delete", "configmaps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("get", "pods"),
    ("create", "pods"),
    ("create", "serviceaccounts/token"),
    ("impersonate", "serviceaccounts"),
]
NOT_NEEDED_CLUSTER_WIDE = [
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "namespaces"),
]


def test_operator_service_account_can_do_exactly_what_the_operator_needs(
    installed: Installed,
) -> None:
    watched = installed.platform_ns
    refused = [(v, r) for v, r in NEEDED if not installed.can_i(v, r, watched)]
    assert refused == []
    granted = [(v, r) for v, r in NOT_NEEDED if installed.can_i(v, r, watched)]
    granted += [(v, r) for v, r in NOT_NEEDED_CLUSTER_WIDE if installed.can_i(v, r)]
    assert granted == []


def test_with_watch_namespaces_nothing_is_granted_outside_them(installed: Installed) -> None:
    """The chart was installed with watchNamespaces: Roles only, no ClusterRole."""
    elsewhere = [(v, r) for v, r in NEEDED if installed.can_i(v, r, "tenant")]
    assert elsewhere == []
    everywhere = [(v, r) for v, r in NEEDED if installed.can_i(v, r)]  # --all-namespaces
    assert everywhere == []
    kube = ["--kubeconfig", str(installed.plane.kubeconfig)]
    manifest = helm("get", "manifest", RELEASE, *kube, "-n", installed.operator_ns)
    assert manifest.returncode == 0, manifest.stderr
    kinds = {(d["kind"], d["metadata"].get("namespace")) for d in documents(manifest.stdout)}
    assert ("Role", installed.platform_ns) in kinds
    assert ("RoleBinding", installed.platform_ns) in kinds
    assert not {k for k, _ in kinds} & {"ClusterRole", "ClusterRoleBinding"}


def _token_kubeconfig(installed: Installed, path: Path) -> Path:
    """A kubeconfig that logs in as the chart's ServiceAccount, with its own token."""
    created = installed.kubectl(
        "create", "token", OPERATOR_SA, "-n", installed.operator_ns, "--duration=1h"
    )
    assert created.returncode == 0, created.stderr
    admin = yaml.safe_load(installed.plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "sa", "user": {"token": created.stdout.strip()}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def test_the_operator_reconciles_the_release_under_the_charts_service_account(
    installed: Installed, kafka: Kafka, tmp_path: Path
) -> None:
    kubeconfig = _token_kubeconfig(installed, tmp_path / "kubeconfig")
    whoami = run(tool("kubectl"), "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    username = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{installed.operator_ns}:{OPERATOR_SA}"

    [deployment] = [
        d
        for d in documents(
            helm(
                "template",
                RELEASE,
                str(CHARTS / "loan-operator"),
                "--set",
                f"watchNamespaces={{{installed.platform_ns}}}",
            ).stdout
        )
        if d["kind"] == "Deployment"
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    liveness_port, metrics_port = free_port(), free_port()
    # The chart's own arguments, with the liveness address moved to a free loopback port.
    argv = [
        a
        if not a.startswith("--liveness=")
        else f"--liveness=http://{LOOPBACK}:{liveness_port}/healthz"
        for a in args
    ]
    env = {
        **os.environ,
        # The chart's kafka.credentialsSecret, as the fixture's broker knows it (a super user).
        **kafka.environment(),
        "KUBECONFIG": str(kubeconfig),
        "METRICS_HOST": LOOPBACK,
        "METRICS_PORT": str(metrics_port),
        "OPERATOR_RESYNC_SECONDS": "3",
        "OPERATOR_KAFKA_TIMEOUT_SECONDS": "2",
        "OPERATOR_MAX_BACKOFF_SECONDS": "8",
    }
    process = ManagedProcess(
        "loan-operator",
        [str(Path(sys.executable).parent / "loan-operator"), *argv],
        tmp_path / "operator.log",
        env=env,
    )
    process.start()
    try:
        process.wait_ready(lambda: http_ok(f"http://{LOOPBACK}:{liveness_port}/healthz"), 60)
        custom = client.CustomObjectsApi(installed.api)

        seen: dict[str, Any] = {}

        def ready() -> bool:
            body = custom.get_namespaced_custom_object(
                "prequal.dev", "v1alpha1", installed.platform_ns, "loanpipelines", PIPELINE
            )
            seen["status"] = body.get("status", {})
            conditions = {c["type"]: c["status"] for c in seen["status"].get("conditions", [])}
            return conditions.get("Ready") == "True"

        if not poll(ready, 120, interval=0.5):
            log = (tmp_path / "operator.log").read_text()[-3000:]
            pytest.fail(f"LoanPipeline {PIPELINE} not Ready: {seen.get('status')}\n{log}")
        core = client.CoreV1Api(installed.api)
        settings = core.read_namespaced_config_map(
            f"{PIPELINE}-pipeline", installed.platform_ns
        ).data
        assert (
            settings["TOPIC_APPLICATIONS_SUBMITTED"]
            == f"{installed.topic_prefix}loan_applications_submitted"
        )
        keys = core.read_namespaced_secret(f"{PIPELINE}-pan-keys", installed.platform_ns).data
        assert set(keys) >= {"sealing_private_keys", "sealing_public_keys"}
        assert "pan_blind_index_key" not in keys
        index_keys = core.read_namespaced_secret(
            f"{PIPELINE}-pan-keys-index", installed.platform_ns
        ).data
        assert set(index_keys) == {"pan_index_keys", "pan_index_active_key_id"}
        api_keys = core.read_namespaced_secret(
            f"{PIPELINE}-pan-keys-api", installed.platform_ns
        ).data
        assert set(api_keys) == {
            "sealing_public_keys",
            "sealing_active_key_id",
            "webhook_sealing_public_keys",
            "webhook_sealing_active_key_id",
        }
        # The dispatcher's own key Secret, the one its pods mount.
        webhook_keys = core.read_namespaced_secret(
            f"{PIPELINE}-pan-keys-webhooks", installed.platform_ns
        ).data
        assert "webhook_sealing_private_keys" in webhook_keys
        apps = client.AppsV1Api(installed.api)

        def scaled() -> int | None:
            replicas = apps.read_namespaced_deployment(
                f"{PIPELINE}-credit", installed.platform_ns
            ).spec.replicas
            return replicas if replicas == 2 else None

        # The chart left replicas unset (the API server defaulted it to 1); the operator owns it.
        wait_until(
            scaled,
            60,
            interval=0.5,
            what="the operator to scale the credit consumer to its minReplicas",
        )
        assert process.alive()
        with pytest.raises(ApiException) as forbidden:
            client.CoreV1Api(config.new_client_from_config(str(kubeconfig))).list_namespaced_pod(
                installed.platform_ns
            )
        assert forbidden.value.status == 403
    finally:
        process.stop()
