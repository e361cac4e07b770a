"""The one module that talks to the Kubernetes API through the kubernetes client.

kopf does the watching; this adapter does the writing the worker needs: Secrets, the
ConfigMap, Deployment scale subresources, the LoanPipeline's status subresource and Events.
Everything speaks plain dicts and strings so the rest of the operator never sees client models.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiException

from loan_operator.ownership import (
    MANAGED_BY,
    PIPELINE_ANNOTATION,
    Claim,
    ObjectMeta,
    PipelineClaims,
    Refusal,
)

GROUP = "prequal.dev"
VERSION = "v1alpha1"
PLURAL = "loanpipelines"
KIND = "LoanPipeline"
_MERGE_PATCH = "application/merge-patch+json"


class NotFound(Exception):  # noqa: N818 - mirrors the HTTP status
    pass


class Conflict(Exception):  # noqa: N818 - mirrors the HTTP status
    """Someone else changed the object since it was read; read again and retry."""


@dataclass(frozen=True)
class PipelineRef:
    namespace: str
    name: str
    uid: str

    def owner_reference(self) -> client.V1OwnerReference:
        return client.V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}",
            kind=KIND,
            name=self.name,
            uid=self.uid,
            controller=True,
        )


@dataclass(frozen=True)
class SecretData:
    data: dict[str, str]  # decoded values
    owned_by: frozenset[str]  # uids of the owners
    meta: ObjectMeta


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode(data: Mapping[str, bytes | str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def _encode(data: Mapping[str, str]) -> dict[str, bytes | str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def _owners(metadata: client.V1ObjectMeta | None) -> list[client.V1OwnerReference]:
    return list(metadata.owner_references or ()) if metadata else []


def _meta(metadata: client.V1ObjectMeta | None) -> ObjectMeta:
    if metadata is None:
        return ObjectMeta({}, {})
    return ObjectMeta(
        labels=dict(metadata.labels or {}),
        annotations=dict(metadata.annotations or {}),
        controllers=tuple((o.kind, o.name, o.uid) for o in _owners(metadata) if o.controller),
    )


def api_client_from_environment() -> client.ApiClient:
    """KUBECONFIG (or ~/.kube/config) when present, else the pod's service account."""
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if os.path.exists(kubeconfig):
        api: client.ApiClient = config.new_client_from_config(kubeconfig)  # type: ignore[no-untyped-call]
        return api
    configuration = client.Configuration()
    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api: client.ApiClient, instance: str = "loan-operator") -> None:
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.instance = instance

    # --- Secrets ---------------------------------------------------------------------------
    def read_secret(self, namespace: str, name: str) -> SecretData | None:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        owners = frozenset(o.uid for o in _owners(secret.metadata))
        return SecretData(_decode(secret.data), owners, _meta(secret.metadata))

    def create_secret(
        self, namespace: str, name: str, data: Mapping[str, str], pipeline: PipelineRef
    ) -> bool:
        """Creates a key Secret for `pipeline`; False when it already exists (never overwritten).

        Labelled as the operator's and annotated with the pipeline's name, with no
        ownerReference: the garbage collector must never delete keys with a pipeline.
        """
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                labels=dict(MANAGED_BY),
                annotations={PIPELINE_ANNOTATION: pipeline.name},
            ),
            type="Opaque",
            data=_encode(data),
        )
        try:
            self.core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def update_secret(
        self,
        namespace: str,
        name: str,
        *,
        data: Mapping[str, str] | None = None,
        owner: PipelineRef,
        owned: bool,
        claim: bool = False,
    ) -> None:
        """Replaces data and/or our owner reference, guarded by the resourceVersion read;
        with `claim`, also annotates the Secret as the pipeline's (an adoption)."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            raise NotFound(name) if exc.status == 404 else exc from exc
        refs = [r for r in _owners(secret.metadata) if r.uid != owner.uid]
        if owned:
            refs.append(owner.owner_reference())
        version = secret.metadata.resource_version if secret.metadata else None
        # A merge patch replaces lists whole; the resourceVersion makes it fail on a race.
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": version,
                "ownerReferences": [self._plain(r) for r in refs],
            }
        }
        if claim:
            patch["metadata"]["annotations"] = {PIPELINE_ANNOTATION: owner.name}
        if data is not None:
            patch["data"] = _encode(data)
        try:
            self.core.patch_namespaced_secret(name, namespace, patch, _content_type=_MERGE_PATCH)
        except ApiException as exc:
            raise Conflict(name) if exc.status == 409 else exc from exc

    def _plain(self, model: object) -> Any:
        return self.core.api_client.sanitize_for_serialization(model)

    # --- ConfigMap -------------------------------------------------------------------------
    def apply_config_map(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        owner: PipelineRef,
        claim: Callable[[ObjectMeta], Claim | Refusal],
    ) -> str | Refusal | None:
        """Creates or updates the ConfigMap; returns "created", "updated", None (unchanged),
        or the Refusal `claim` gave for an existing ConfigMap that is not the pipeline's."""
        metadata = client.V1ObjectMeta(
            name=name, labels=dict(MANAGED_BY), owner_references=[owner.owner_reference()]
        )
        try:
            current = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=metadata, data=dict(data))
            )
            return "created"
        verdict = claim(_meta(current.metadata))
        if isinstance(verdict, Refusal):
            return verdict
        if dict(current.data or {}) == dict(data) and verdict == "ours":
            return None
        patch = {
            "metadata": {
                "resourceVersion": current.metadata.resource_version if current.metadata else None,
                "ownerReferences": [self._plain(owner.owner_reference())],
            },
            "data": dict(data),
        }
        try:
            self.core.patch_namespaced_config_map(
                name, namespace, patch, _content_type=_MERGE_PATCH
            )
        except ApiException as exc:
            raise Conflict(name) if exc.status == 409 else exc from exc
        return "updated"

    # --- Deployments' scale subresource ----------------------------------------------------
    def read_replicas(self, namespace: str, deployment: str) -> int | None:
        try:
            scale = self.apps.read_namespaced_deployment_scale(deployment, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return int(scale.spec.replicas or 0) if scale.spec else 0

    def set_replicas(self, namespace: str, deployment: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            deployment, namespace, {"spec": {"replicas": replicas}}, _content_type=_MERGE_PATCH
        )

    # --- the LoanPipelines ----------------------------------------------------------------
    def list_pipelines(self, namespace: str) -> list[PipelineClaims]:
        """Every LoanPipeline of the namespace and the Deployments its consumers name."""
        found: dict[str, Any] = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, PLURAL
        )
        return [
            PipelineClaims(
                name=item["metadata"]["name"],
                created=str(item["metadata"].get("creationTimestamp") or ""),
                deployments=frozenset(
                    str(c["deployment"])
                    for c in (item.get("spec") or {}).get("consumers") or ()
                    if "deployment" in c
                ),
                deleting=bool(item["metadata"].get("deletionTimestamp")),
            )
            for item in found.get("items") or ()
        ]

    def pipeline_exists(self, namespace: str, name: str) -> bool:
        """Asked of the API server now, not of a cache (a list by name: RBAC has no `get`)."""
        found: dict[str, Any] = self.custom.list_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, namespace, PLURAL, field_selector=f"metadata.name={name}"
        )
        return bool(found.get("items"))

    def pipeline_bootstraps(self, namespaces: Sequence[str]) -> dict[tuple[str, str], str]:
        """(namespace, name) → spec.kafka.bootstrapServers of every LoanPipeline in these
        namespaces, or in all of them when none is named."""
        pages: list[dict[str, Any]] = (
            [
                self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)  # type: ignore[misc]
                for namespace in namespaces
            ]
            if namespaces
            else [self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)]  # type: ignore[list-item]
        )
        items = [item for page in pages for item in page.get("items") or ()]
        return {
            (item["metadata"]["namespace"], item["metadata"]["name"]): str(
                ((item.get("spec") or {}).get("kafka") or {}).get("bootstrapServers") or ""
            )
            for item in items
        }

    def patch_status(self, ref: PipelineRef, status: Mapping[str, Any]) -> bool:
        """Merge-patches the status subresource; False if the object is gone."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ref.namespace,
                PLURAL,
                ref.name,
                {"status": dict(status)},
                _content_type=_MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def post_event(
        self, ref: PipelineRef, reason: str, message: str, *, warning: bool = False
    ) -> None:
        stamp = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{ref.name}.{uuid.uuid4().hex[:16]}", namespace=ref.namespace
            ),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            first_timestamp=stamp,
            last_timestamp=stamp,
            count=1,
            source=client.V1EventSource(component="loan-operator"),
            reporting_component="prequal.dev/loan-operator",
            reporting_instance=self.instance,
        )
        self.core.create_namespaced_event(ref.namespace, body)
