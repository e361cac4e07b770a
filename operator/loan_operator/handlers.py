"""The kopf registrations: watch LoanPipelines and hand every event to the supervisor.

Thin on purpose. There are no change handlers, timers or daemons, so kopf never adds a
finalizer or progress annotations to a LoanPipeline (see worker.py for why).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from loan_operator.kube import GROUP, PLURAL, VERSION
from loan_operator.worker import Supervisor


def register(registry: kopf.OperatorRegistry, supervisor: Supervisor) -> None:
    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # One discovery at startup; no CRD watching (and no RBAC for it).
        settings.scanning.disabled = True
        # kopf's own per-object log Events only for trouble; the worker posts what it changes.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # KUBECONFIG (or ~/.kube/config) when present, else the pod's ServiceAccount.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def pipeline_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        supervisor.observe(type, body)

    @kopf.on.probe(id="pipelines", registry=registry)
    def pipelines(**_: Any) -> int:
        return supervisor.count()

    @kopf.on.cleanup(registry=registry)
    def stop(**_: Any) -> None:
        supervisor.stop()
