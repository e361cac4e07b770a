"""The control plane the k8s tier runs on is a real one: it stores and validates custom
resources, garbage-collects dependents, and helm talks to it."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from devstack.kube import ControlPlane
from devstack.tools import tool

SMOKE_CHART = Path(__file__).parent / "smoke-chart"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.prequal.dev"},
    "spec": {
        "group": "smoke.prequal.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(control_plane.kubeconfig)) as api_client:
        yield api_client


def _namespace(api: client.ApiClient) -> str:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata={"name": name}))
    return name


def test_crd_and_custom_resource_are_stored_and_validated(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(WIDGET_CRD)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition("widgets.smoke.prequal.dev")
        conditions = {c.type: c.status for c in crd.status.conditions or []}
        if conditions.get("Established") == "True":
            break
        time.sleep(0.2)
    namespace = _namespace(api)
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": "smoke.prequal.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3},
    }
    custom.create_namespaced_custom_object("smoke.prequal.dev", "v1", namespace, "widgets", body)
    stored = custom.get_namespaced_custom_object(
        "smoke.prequal.dev", "v1", namespace, "widgets", "w1"
    )
    assert stored["spec"] == {"size": 3}

    invalid = {**body, "metadata": {"name": "w2"}, "spec": {"size": 0}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            "smoke.prequal.dev", "v1", namespace, "widgets", invalid
        )
    assert refused.value.status == 422
    assert "spec.size" in refused.value.body


def test_dependent_is_garbage_collected_when_its_owner_is_deleted(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    namespace = _namespace(api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata={"name": "owner"})
    )
    owner_ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata={"name": "dependent", "ownerReferences": [owner_ref]}),
    )
    core.delete_namespaced_config_map("owner", namespace)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_secret("dependent", namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    pytest.fail("the dependent Secret outlived its owner: no garbage collector is running")


def test_helm_renders_and_dry_runs_a_chart_against_the_api_server(
    control_plane: ControlPlane, api: client.ApiClient
) -> None:
    namespace = _namespace(api)
    namespace_uid = client.CoreV1Api(api).read_namespace(namespace).metadata.uid
    kubeconfig = ["--kubeconfig", str(control_plane.kubeconfig)]
    helm = [tool("helm"), *kubeconfig, "-n", namespace]

    def render(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*helm, *args], capture_output=True, text=True, check=False)

    rendered = render("template", "demo", str(SMOKE_CHART), "--set", "message=rendered")
    assert rendered.returncode == 0, rendered.stderr
    manifest = yaml.safe_load(rendered.stdout)
    assert manifest["metadata"]["name"] == "demo-smoke"
    assert manifest["data"] == {"message": "rendered", "namespaceUid": "offline"}

    dry_run = render("install", "demo", str(SMOKE_CHART), "--dry-run=server")
    assert dry_run.returncode == 0, dry_run.stderr
    assert "STATUS: pending-install" in dry_run.stdout
    # Only a live API server could have told helm this namespace's uid.
    assert f'namespaceUid: "{namespace_uid}"' in dry_run.stdout
    # A dry run creates nothing.
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api).read_namespaced_config_map("demo-smoke", namespace)
    assert missing.value.status == 404

    # The server validates what helm renders: a name that is not a DNS subdomain is refused.
    broken = render("template", "broken", str(SMOKE_CHART), "--set", "nameOverride=Not_A_Name")
    assert broken.returncode == 0, broken.stderr
    applied = subprocess.run(
        [tool("kubectl"), *kubeconfig, "-n", namespace, "apply", "--dry-run=server", "-f", "-"],
        input=broken.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode != 0
    assert "Not_A_Name" in applied.stderr
