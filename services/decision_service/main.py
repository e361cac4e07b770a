"""`decision-service`: the composition root; consumes until SIGTERM, then finishes its batch."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry

from decision_service.handler import DecisionHandler, DecisionMetrics
from decision_service.settings import DecisionSettings
from prequal.consumer_process import build, serve
from prequal.startup import start

SERVICE = "decision-service"
log = logging.getLogger("decision_service")


def main() -> int:
    settings = start(SERVICE, DecisionSettings)
    registry = CollectorRegistry()
    handler = DecisionHandler(
        settings.policy(),
        DecisionMetrics(registry),
        settings.decision_version_retries,
        challenger=settings.challenger(),
        decided_topic=settings.topic_applications_decided,
    )
    runtime = build(
        settings,
        service=SERVICE,
        topic=settings.topic_credit_reports,
        handler=handler,
        registry=registry,
    )
    policy = settings.policy()
    log.info(
        "policy %s: minimum score %d, term %d months",
        policy.version,
        policy.min_credit_score,
        policy.term_months,
    )
    challenger = settings.challenger()
    if challenger is not None:
        log.info(
            "challenger policy %s: recorded beside each decision, never applied", challenger.version
        )
    return serve(runtime, settings, registry)


if __name__ == "__main__":
    sys.exit(main())
