"""The kopf registrations: watch LoanPipelines and hand every event to the supervisor; run
the orphan sweep alongside.

Thin on purpose. No change handlers, timers or daemons, and no finalizer: deleting a
LoanPipeline never waits for the operator (deletion.py). The one `on.delete` handler is
optional (`requires_finalizer=False`), for two reasons:

- kopf is configured with the finalizer name an earlier version held,
  `prequal.dev/kafka-access`; with a registered resource-changing handler and none that needs
  a finalizer, kopf removes that finalizer from every LoanPipeline still carrying it (at its
  first event after an upgrade, e.g. the initial listing), so old pipelines stop blocking
  their deletion. This is why the operator keeps `patch` on loanpipelines.
- kopf calls an optional deletion handler only while some other handler holds its finalizer,
  which never happens here; the real cleanup at deletion runs in the pipeline's worker when the
  watch reports the object gone. Should kopf call it all the same, it is the same best-effort
  cleanup.

It keeps no "last handled configuration": with no create/update handlers there is no diff to
compute (_NoDiffBase).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from loan_operator.deletion import PipelineDeletion
from loan_operator.kafka_principals import LEGACY_FINALIZER
from loan_operator.kube import GROUP, PLURAL, VERSION, PipelineRef
from loan_operator.orphan_sweep import OrphanSweep
from loan_operator.spec import parse_spec
from loan_operator.worker import Supervisor


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection, unused (no create/update handlers): store and fetch nothing,
    so kopf never writes the spec into an annotation on every change."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def register(
    registry: kopf.OperatorRegistry,
    supervisor: Supervisor,
    deletion: PipelineDeletion,
    sweep: OrphanSweep,
) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # One discovery at startup; no CRD watching (and no RBAC for it).
        settings.scanning.disabled = True
        # kopf's own per-object log Events only for trouble; the worker posts what it changes.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.persistence.finalizer = LEGACY_FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.persistence.diffbase_storage = _NoDiffBase()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # KUBECONFIG (or ~/.kube/config) when present, else the pod's ServiceAccount.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def pipeline_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        supervisor.observe(type, body)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="kafka-access", optional=True, registry=registry)
    def remove_kafka_access(body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        try:
            spec = parse_spec(body.get("spec") or {})
        except (KeyError, TypeError, ValueError):
            return  # never converged: no user was made for it
        deletion.remove_access(PipelineRef(meta["namespace"], meta["name"], meta["uid"]), spec)

    @kopf.on.startup(registry=registry)
    def start_sweep(**_: Any) -> None:
        sweep.start()

    @kopf.on.probe(id="pipelines", registry=registry)
    def pipelines(**_: Any) -> int:
        return supervisor.count()

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        sweep.stop()
        supervisor.stop()
