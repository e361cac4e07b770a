"""Which objects a LoanPipeline may touch: the ones the operator made for it, and no other.

A LoanPipeline names its Secrets and Deployments by name, so anyone who may create one could
otherwise point the operator at an object that is not theirs (another pipeline's keys, an
unrelated Secret that happens to be called `<x>-api`, another pipeline's consumers) and have it
rewritten, rescaled or garbage-collected. These pure decisions say, before anything is
written, whether an object is the pipeline's own, is the operator's and may be adopted, or must
be left alone with a condition saying why (docs/operator.md, "What the operator may touch").

- Secrets: only those labelled `app.kubernetes.io/managed-by: loan-operator` (the operator
  labels what it creates). Key Secrets carry no ownerReference, so the garbage collector never
  deletes them with a pipeline; the annotation `prequal.dev/pipeline` names the pipeline they
  belong to instead. A Secret the operator made before that annotation existed is adopted by
  the first pipeline that names it.
- The pipeline ConfigMap: labelled likewise and controlled by this pipeline, or by an earlier
  LoanPipeline of the same name (deleted and created again).
- Deployments: the operator never creates them. A Deployment named by several pipelines of one
  namespace belongs to the oldest (creation time, then name); the others leave it alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "loan-operator"
MANAGED_BY = {MANAGED_BY_LABEL: MANAGER}
PIPELINE_ANNOTATION = "prequal.dev/pipeline"

OWNED_BY_ANOTHER_PIPELINE = "OwnedByAnotherPipeline"
NOT_MANAGED_BY_OPERATOR = "NotManagedByOperator"

Claim = Literal["ours", "adopt"]


@dataclass(frozen=True)
class Refusal:
    """Why the pipeline may not touch an object: a condition's reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class ObjectMeta:
    """What ownership is decided from: an object's labels, annotations and owners."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    # (kind, name, uid) of each ownerReference with controller: true
    controllers: tuple[tuple[str, str, str], ...] = ()


def managed(meta: ObjectMeta) -> bool:
    return meta.labels.get(MANAGED_BY_LABEL) == MANAGER


def secret_claim(pipeline: str, kind: str, name: str, meta: ObjectMeta) -> Claim | Refusal:
    """May `pipeline` change the existing Secret `name` (its `kind`, for the message)?"""
    if not managed(meta):
        return Refusal(
            NOT_MANAGED_BY_OPERATOR,
            f"{kind} {name} exists and was not created by the operator (no label "
            f"{MANAGED_BY_LABEL}={MANAGER}); it is left untouched. Name another Secret, or "
            "label this one to hand it over",
        )
    owner = meta.annotations.get(PIPELINE_ANNOTATION)
    if owner is None:
        return "adopt"
    if owner != pipeline:
        return Refusal(
            OWNED_BY_ANOTHER_PIPELINE,
            f"{kind} {name} belongs to LoanPipeline {owner}; it is left untouched",
        )
    return "ours"


def config_map_claim(
    pipeline: str, uid: str, kind: str, name: str, meta: ObjectMeta
) -> Claim | Refusal:
    """May the pipeline (`uid`) write the existing ConfigMap `name`?"""
    if not managed(meta):
        return Refusal(
            NOT_MANAGED_BY_OPERATOR,
            f"ConfigMap {name} exists and was not created by the operator (no label "
            f"{MANAGED_BY_LABEL}={MANAGER}); it is left untouched",
        )
    if any(owner_uid == uid for _, _, owner_uid in meta.controllers):
        return "ours"
    others = [(k, n) for k, n, _ in meta.controllers if (k, n) != (kind, pipeline)]
    if others:
        k, n = others[0]
        return Refusal(
            OWNED_BY_ANOTHER_PIPELINE,
            f"ConfigMap {name} is controlled by {k} {n}; it is left untouched",
        )
    return "adopt"  # no controller, or an earlier LoanPipeline of this name


@dataclass(frozen=True)
class PipelineClaims:
    """One LoanPipeline of a namespace and the Deployments its consumers name."""

    name: str
    created: str  # metadata.creationTimestamp (RFC 3339, so it sorts as text)
    deployments: frozenset[str]
    deleting: bool = False


def deployment_owner(deployment: str, pipelines: Iterable[PipelineClaims]) -> str | None:
    """The pipeline a Deployment belongs to: the oldest one (then by name) that names it.

    Every worker computes the same answer from the same list, so two pipelines naming one
    Deployment never take turns scaling it. A pipeline being deleted no longer claims.
    """
    claims = sorted(
        (p.created, p.name) for p in pipelines if deployment in p.deployments and not p.deleting
    )
    return claims[0][1] if claims else None


def deployment_claim(
    pipeline: str, deployment: str, pipelines: Iterable[PipelineClaims]
) -> Claim | Refusal:
    owner = deployment_owner(deployment, pipelines)
    if owner is None or owner == pipeline:
        return "ours"
    return Refusal(
        OWNED_BY_ANOTHER_PIPELINE,
        f"Deployment {deployment} is scaled by LoanPipeline {owner}, which named it first; "
        "it is left untouched",
    )
