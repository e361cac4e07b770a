"""The operator under test runs as a real `loan-operator` process, logged in as its
ServiceAccount with exactly the rules of manifests/operator/rbac.yaml, against the session's
API server and Kafka. Each test gets its own namespace and its own topic prefix."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from kubernetes import client, config
from kubernetes.client import ApiException

from devstack.kafka import Kafka
from devstack.kube import ControlPlane
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.process import ManagedProcess, log_tail
from devstack.tools import tool
from tests.polling import wait_until

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "manifests" / "crds" / "loanpipelines.prequal.dev.yaml"
RBAC = REPO / "manifests" / "operator" / "rbac.yaml"
GROUP, VERSION, PLURAL = "prequal.dev", "v1alpha1", "loanpipelines"
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 30, what: str = "") -> T:
    """tests.polling.wait_until with this tier's pace: an API server answers in milliseconds,
    the operator reacts within seconds."""
    return wait_until(probe, timeout, interval=0.25, what=what or repr(probe))


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(plane.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="package")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(control_plane.kubeconfig)) as api_client:
        yield api_client


@pytest.fixture(scope="package")
def crd(control_plane: ControlPlane, api: client.ApiClient) -> None:
    kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    ext = client.ApiextensionsV1Api(api)

    def established() -> bool:
        status = ext.read_custom_resource_definition("loanpipelines.prequal.dev").status
        return any(c.type == "Established" and c.status == "True" for c in status.conditions or [])

    wait_for(established, 30, "the CRD to be established")


def _service_account_kubeconfig(plane: ControlPlane, api: client.ApiClient, path: Path) -> Path:
    """A kubeconfig that logs in with a token of the operator's ServiceAccount."""
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="loan-operator"))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    kubectl(plane, "apply", "-f", str(RBAC))
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)
    )
    token = core.create_namespaced_service_account_token(
        "loan-operator", "loan-operator", request
    ).status.token
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "loan-operator", "user": {"token": token}}],
        "contexts": [
            {"name": "sa", "context": {"cluster": cluster["name"], "user": "loan-operator"}}
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    """`loan-operator` as a child process; stop() and start() again for the outage tests."""

    kubeconfig: Path
    log_path: Path
    metrics_port: int
    liveness_port: int
    # The operator's Kafka identity (the broker's super user), as KAFKA_* settings.
    kafka_env: dict[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    @property
    def liveness_url(self) -> str:
        return f"http://{LOOPBACK}:{self.liveness_port}/healthz"

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "METRICS_HOST": LOOPBACK,
            "METRICS_PORT": str(self.metrics_port),
            "OPERATOR_RESYNC_SECONDS": "3",
            "OPERATOR_KAFKA_TIMEOUT_SECONDS": "2",
            "OPERATOR_MAX_BACKOFF_SECONDS": "8",
            "OPERATOR_KEY_DISTRIBUTION_SECONDS": "4",
            "OPERATOR_ORPHAN_SWEEP_SECONDS": "5",
            "LOG_LEVEL": "INFO",
            **self.kafka_env,
        }
        self.process = ManagedProcess(
            "loan-operator",
            [
                str(Path(sys.executable).parent / "loan-operator"),
                "--all-namespaces",
                f"--liveness={self.liveness_url}",
            ],
            self.log_path,
            env=env,
            stop_timeout=15,
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(self.liveness_url), 60)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:  # noqa: S310 - loopback
            text: str = resp.read().decode()
            return text


@pytest.fixture(scope="package")
def operator(
    control_plane: ControlPlane,
    api: client.ApiClient,
    crd: None,
    kafka: Kafka,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    directory = tmp_path_factory.mktemp("loan-operator")
    kubeconfig = _service_account_kubeconfig(control_plane, api, directory / "kubeconfig")
    proc = OperatorProcess(
        kubeconfig,
        directory / "operator.log",
        free_port(),
        free_port(),
        kafka_env=kafka.environment(),
    )
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"lp-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="package")
def kafka_admin(kafka: Kafka) -> AdminClient:
    return AdminClient(kafka.connection().config())


def pipeline_body(name: str, bootstrap: str, prefix: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LoanPipeline",
        "metadata": {"name": name},
        "spec": {
            "kafka": {
                "bootstrapServers": bootstrap,
                "topicPrefix": prefix,
                "partitions": 3,
                "config": {"retention.ms": "604800000"},
                "dlq": {"partitions": 1, "config": {"retention.ms": "1209600000"}},
            },
            "database": {"secretName": f"{name}-db"},
            "encryption": {"keySecretName": f"{name}-pan-keys"},
        },
    }
    body["spec"].update(spec)
    return body


class Pipelines:
    """LoanPipeline CRUD and status reads in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return created

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    def patch_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"metadata": metadata},
            _content_type="application/merge-patch+json",
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        body = self.get(name) or {}
        for item in (body.get("status") or {}).get("conditions") or []:
            if item["type"] == type_:
                found: dict[str, Any] = item
                return found
        return None

    def wait_condition(
        self, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            found = self.condition(name, type_)
            if found and found["status"] == status and reason in (None, found["reason"]):
                return found
            return None

        return wait_for(matches, timeout, f"{name} {type_}={status} ({reason})")

    def create_db_secret(self, name: str) -> None:
        url = base64.b64encode(b"postgresql://app@127.0.0.1:5432/prequal").decode()
        self.core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(metadata=client.V1ObjectMeta(name=name), data={"url": url}),
        )

    def create_handed_over_secret(self, name: str, data: dict[str, str]) -> None:
        """A Secret with the operator's label and no pipeline annotation: what an older
        operator made, or one a person handed over (a restored backup)."""
        self.core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=name, labels={"app.kubernetes.io/managed-by": "loan-operator"}
                ),
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            ),
        )

    def secret(self, name: str) -> dict[str, str] | None:
        try:
            secret = self.core.read_namespaced_secret(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def config_map(self, name: str) -> dict[str, str] | None:
        try:
            found = self.core.read_namespaced_config_map(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(found.data or {})

    def create_deployment(self, name: str, replicas: int = 1) -> None:
        labels = {"app": name}
        self.apps.create_namespaced_deployment(
            self.namespace,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1DeploymentSpec(
                    replicas=replicas,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            containers=[client.V1Container(name="c", image="example.invalid/c")]
                        ),
                    ),
                ),
            ),
        )

    def replicas(self, deployment: str) -> int:
        scale = self.apps.read_namespaced_deployment_scale(deployment, self.namespace)
        return int(scale.spec.replicas or 0)  # 0 is omitted on the wire

    def events(self, reason: str | None = None) -> list[Any]:
        items = self.core.list_namespaced_event(self.namespace).items
        return [e for e in items if reason is None or e.reason == reason]


@pytest.fixture
def pipelines(api: client.ApiClient, namespace: str) -> Pipelines:
    return Pipelines(api, namespace)


@pytest.fixture(autouse=True)
def _operator_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test does to it, the operator process must still be running afterwards."""
    yield
    if "operator" in request.fixturenames:
        proc: OperatorProcess = request.getfixturevalue("operator")
        assert proc.alive(), f"loan-operator died:\n{proc.log_tail()}"
