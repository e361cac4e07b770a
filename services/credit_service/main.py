"""`credit-service`: the composition root; consumes until SIGTERM, then finishes its batch."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from credit_service.handler import CreditHandler, CreditMetrics, decrypt_only
from credit_service.settings import CreditSettings
from prequal.consumer_process import build, serve
from prequal.db.migrate import SchemaNotReadyError, check_at_head
from prequal.logging import configure_logging
from prequal.settings import load_settings

SERVICE = "credit-service"
log = logging.getLogger("credit_service")


def main() -> int:
    configure_logging(SERVICE)
    try:
        settings = load_settings(CreditSettings)
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
    handler = CreditHandler(
        decrypt_only(settings.keyring()), settings.topic_credit_reports, CreditMetrics(registry)
    )
    runtime = build(
        settings,
        service=SERVICE,
        topic=settings.topic_applications_submitted,
        handler=handler,
        registry=registry,
    )
    return serve(runtime, settings, registry)


if __name__ == "__main__":
    sys.exit(main())
