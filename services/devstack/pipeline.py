"""The sample LoanPipeline on the local control plane, reconciled by the real operator.

`make run` applies the CRD, the namespace, the database Secret, the consumers' Deployments and
`manifests/samples/retail.yaml` (pointed at the local Kafka), starts `loan-operator`, and
waits until the pipeline is Ready. The services then read the Secret and ConfigMap the
operator produced, exactly as they would through `envFrom` in a cluster.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiException

from devstack.process import ComponentStartError
from devstack.tools import REPO_ROOT
from prequal.kafka_acl import CONSUMERS, Grant, PipelineTopics, pipeline_grants

CRD = REPO_ROOT / "manifests" / "crds" / "loanpipelines.prequal.dev.yaml"
SAMPLE = REPO_ROOT / "manifests" / "samples" / "retail.yaml"
GROUP, VERSION, PLURAL = "prequal.dev", "v1alpha1", "loanpipelines"


@dataclass(frozen=True)
class LocalPipeline:
    """What `make run` needs to know about the applied sample."""

    namespace: str
    name: str
    body: dict[str, Any]

    @property
    def consumers(self) -> list[dict[str, Any]]:
        consumers: list[dict[str, Any]] = self.body["spec"].get("consumers", [])
        return consumers

    @property
    def key_secret(self) -> str:
        return str(self.body["spec"]["encryption"]["keySecretName"])

    @property
    def database_secret(self) -> str:
        return str(self.body["spec"]["database"]["secretName"])


def load_sample(kafka_bootstrap: str, path: Path = SAMPLE) -> LocalPipeline:
    body = yaml.safe_load(path.read_text())
    body["spec"]["kafka"]["bootstrapServers"] = kafka_bootstrap
    meta = body["metadata"]
    return LocalPipeline(meta["namespace"], meta["name"], body)


def apply_prerequisites(api: client.ApiClient, pipeline: LocalPipeline, database_url: str) -> None:
    """CRD, namespace, database Secret and one Deployment per consumer (pods never run here;
    the local kubelet runs processes instead)."""
    ext = client.ApiextensionsV1Api(api)
    crd = yaml.safe_load(CRD.read_text())
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(crd["metadata"]["name"])
        crd["metadata"]["resourceVersion"] = current.metadata and current.metadata.resource_version
        ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)
    _wait_established(ext, crd["metadata"]["name"])

    core = client.CoreV1Api(api)
    _create_or_keep(
        lambda: core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=pipeline.namespace))
        )
    )
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=pipeline.database_secret),
        data={"url": base64.b64encode(database_url.encode()).decode()},
    )
    try:
        core.create_namespaced_secret(pipeline.namespace, secret)
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_secret(pipeline.database_secret, pipeline.namespace, secret)

    for consumer in pipeline.consumers:
        _create_or_keep(
            lambda c=consumer: client.AppsV1Api(api).create_namespaced_deployment(
                pipeline.namespace,
                _deployment(c["deployment"], c["name"]),  # type: ignore[arg-type]
            )
        )


def apply_pipeline(api: client.ApiClient, pipeline: LocalPipeline) -> None:
    custom = client.CustomObjectsApi(api)
    try:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, pipeline.namespace, PLURAL, pipeline.body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            pipeline.namespace,
            PLURAL,
            pipeline.name,
            {"spec": pipeline.body["spec"]},
        )


def wait_ready(api: client.ApiClient, pipeline: LocalPipeline, timeout: float) -> None:
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    conditions: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        body: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, pipeline.namespace, PLURAL, pipeline.name
        )
        conditions = body.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return
        time.sleep(0.5)
    summary = "; ".join(
        f"{c['type']}={c['status']} ({c.get('reason')}: {c.get('message')})" for c in conditions
    )
    raise ComponentStartError(
        f"LoanPipeline {pipeline.namespace}/{pipeline.name} was not Ready after {timeout:.0f}s: "
        f"{summary or 'no status yet'}; see the operator's log"
    )


def service_environment(api: client.ApiClient, pipeline: LocalPipeline) -> dict[str, str]:
    """The ConfigMap and the key Secrets the operator wrote, as the services' environment: the
    key Secret, the index-key Secret (`<keySecret>-index`) and the webhook dispatcher's
    (`<keySecret>-webhooks`); `Services` hands each key only to the service that uses it."""
    core = client.CoreV1Api(api)
    config = core.read_namespaced_config_map(f"{pipeline.name}-pipeline", pipeline.namespace)
    env = dict(config.data or {})
    for name in (
        pipeline.key_secret,
        f"{pipeline.key_secret}-index",
        f"{pipeline.key_secret}-webhooks",
    ):
        secret = core.read_namespaced_secret(name, pipeline.namespace)
        for key, value in (secret.data or {}).items():
            env[key.upper()] = base64.b64decode(value).decode()
    return env


def service_grants(pipeline: LocalPipeline, env: Mapping[str, str]) -> list[Grant]:
    """The ACLs that let each local service do on the pipeline's topics what the design lets
    it (prequal.kafka_acl), with the consumer groups the pipeline names."""
    topics = PipelineTopics(
        env["TOPIC_APPLICATIONS_SUBMITTED"],
        env["TOPIC_CREDIT_REPORTS"],
        env["TOPIC_APPLICATIONS_DECIDED"],
    )
    groups = {c["name"]: c["consumerGroup"] for c in pipeline.consumers if c["name"] in CONSUMERS}
    return pipeline_grants(topics, groups=groups)


def _deployment(name: str, component: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": component, "image": "loan-prequal:local", "command": [component]}
                    ]
                },
            },
        },
    }


def _create_or_keep(create: Any) -> None:
    try:
        create()
    except ApiException as exc:
        if exc.status != 409:
            raise


def _wait_established(ext: client.ApiextensionsV1Api, name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(name).status
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise ComponentStartError(f"CRD {name} was not established after 30s")
