"""`webhook-dispatcher`: the composition root. The consumer parks decided events as deliveries;
the deliverer, in a thread beside it, sends them. SIGTERM stops both."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from prequal.consumer_process import build, serve
from prequal.startup import start
from webhook_dispatcher.delivery import Deliverer, DeliveryMetrics, DeliveryPolicy
from webhook_dispatcher.handler import ParkingHandler
from webhook_dispatcher.settings import DispatcherSettings

SERVICE = "webhook-dispatcher"
log = logging.getLogger("webhook_dispatcher")


def policy_of(settings: DispatcherSettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        timeout=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_initial=settings.webhook_backoff_initial_seconds,
        backoff_max=settings.webhook_backoff_max_seconds,
        workers=settings.webhook_workers,
        endpoint_concurrency=settings.webhook_endpoint_concurrency,
        poll_interval=settings.webhook_poll_interval_seconds,
        lease_margin=settings.webhook_lease_margin_seconds,
        allowed_networks=settings.allowed_networks(),
    )


def main() -> int:
    settings = start(SERVICE, DispatcherSettings)
    registry = CollectorRegistry()
    wake = threading.Event()
    runtime = build(
        settings,
        service=SERVICE,
        topic=settings.topic_applications_decided,
        handler=ParkingHandler(wake),
        registry=registry,
    )
    url = settings.database_url.get_secret_value()

    def connect() -> psycopg.Connection[Any]:
        # The deliverer's commits are claims (leases) and outcomes. Should a crash lose one, the
        # row is due again and is sent again with the same webhook-id, which receivers dedupe
        # on (delivery is at least once): no need to wait for the WAL flush on each of them.
        # Every statement runs on this one connection, so that wait was the dispatcher's pace
        # (bench/bench_webhooks.py: 144 deliveries/s with it, see docs/webhooks.md).
        session = settings.session_options()
        options = f"-c synchronous_commit=off {session.pop('options')}"
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=5,
            application_name=SERVICE,
            options=options,
            **session,
        )

    policy = policy_of(settings)
    deliverer = Deliverer(
        connect, policy, DeliveryMetrics(registry), settings.webhook_opener(), wake
    )
    sender = threading.Thread(target=deliverer.run, name="deliverer", daemon=True)
    sender.start()
    log.info(
        "delivering with %d workers, %d per endpoint across replicas, %g s timeout, %d attempts; "
        "non-public networks allowed: %s",
        policy.workers,
        policy.endpoint_concurrency,
        policy.timeout,
        policy.max_attempts,
        settings.webhook_allowed_networks or "none",
    )
    try:
        return serve(runtime, settings, registry)
    finally:
        deliverer.stop()
        sender.join(policy.timeout + 5)


if __name__ == "__main__":
    sys.exit(main())
