"""The kopf registrations: watch LoanPipelines and hand every event to the supervisor; hold
deletion until the pipeline's Kafka users and ACLs are gone.

Thin on purpose. There are no change handlers, timers or daemons. The one `on.delete` handler
(only when the operator manages Kafka principals) gives each LoanPipeline kopf's finalizer,
named `prequal.dev/kafka-access`; kopf writes nothing else to a LoanPipeline but its retry
bookkeeping during a deletion (annotations `kopf.zalando.org/…`). It keeps no "last handled
configuration": with no create/update handlers there is no diff to compute (_NoDiffBase).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from loan_operator.deletion import PipelineDeletion
from loan_operator.kafka_principals import FINALIZER
from loan_operator.kube import GROUP, PLURAL, VERSION
from loan_operator.worker import Supervisor


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection, unused (no create/update handlers): store and fetch nothing,
    so kopf never writes the spec into an annotation on every change."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def register(
    registry: kopf.OperatorRegistry, supervisor: Supervisor, deletion: PipelineDeletion
) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # One discovery at startup; no CRD watching (and no RBAC for it).
        settings.scanning.disabled = True
        # kopf's own per-object log Events only for trouble; the worker posts what it changes.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.persistence.finalizer = FINALIZER
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

    if deletion.guards_access:
        # Not optional: kopf adds the finalizer to every LoanPipeline and removes it once this
        # returns. It retries for as long as it raises (no retry limit, no timeout); a
        # pipeline annotated prequal.dev/skip-kafka-cleanup=true is let go at the next try.
        @kopf.on.delete(GROUP, VERSION, PLURAL, id="kafka-access", registry=registry)
        def remove_kafka_access(body: kopf.Body, retry: int, **_: Any) -> None:
            blocked = deletion.remove_access(body)
            if blocked is not None:
                delay = deletion.retry_delay(blocked, retry + 1)
                raise kopf.TemporaryError(f"{blocked.reason}: {blocked.message}", delay=delay)

    @kopf.on.probe(id="pipelines", registry=registry)
    def pipelines(**_: Any) -> int:
        return supervisor.count()

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        supervisor.stop()
