"""`credit-service`: the composition root; consumes until SIGTERM, then finishes its batch."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry

from credit_service.handler import CreditHandler, CreditMetrics, Keys, decrypt_only
from credit_service.settings import CreditSettings
from prequal.consumer_process import build, serve
from prequal.settings import load_settings
from prequal.startup import start

SERVICE = "credit-service"
log = logging.getLogger("credit_service")


def keys_of(settings: CreditSettings) -> Keys:
    return Keys(settings.opener(), decrypt_only(settings.legacy_keyring()))


def main() -> int:
    settings = start(SERVICE, CreditSettings)
    registry = CollectorRegistry()
    handler = CreditHandler(
        keys_of(settings),
        settings.topic_credit_reports,
        CreditMetrics(registry),
        reload_keys=lambda: keys_of(load_settings(CreditSettings)),
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
