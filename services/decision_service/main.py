"""`decision-service`: the composition root; consumes until SIGTERM, then finishes its batch."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from decision_service.handler import DecisionHandler, DecisionMetrics
from decision_service.settings import DecisionSettings
from prequal.consumer_process import build, serve
from prequal.db.migrate import SchemaNotReadyError, check_at_head
from prequal.logging import configure_logging
from prequal.settings import load_settings

SERVICE = "decision-service"
log = logging.getLogger("decision_service")


def main() -> int:
    configure_logging(SERVICE)
    try:
        settings = load_settings(DecisionSettings)
    except ValidationError as exc:
        log.error("invalid settings: %s", exc)
        return 2
    logging.getLogger().setLevel(settings.log_level)
    try:
        check_at_head(settings.database_url.get_secret_value())
    except SchemaNotReadyError as exc:
        log.error("refusing to start: %s", exc)
        return 1
    registry = CollectorRegistry()
    handler = DecisionHandler(
        settings.policy(), DecisionMetrics(registry), settings.decision_version_retries
    )
    runtime = build(
        settings,
        service=SERVICE,
        topic=settings.topic_credit_reports,
        handler=handler,
        registry=registry,
    )
    log.info(
        "policy: minimum score %d, term %d months",
        settings.decision_min_credit_score,
        settings.decision_term_months,
    )
    return serve(runtime, settings, registry)


if __name__ == "__main__":
    sys.exit(main())
