"""`outbox-publisher`: the composition root; runs until SIGTERM, then finishes its batch."""

from __future__ import annotations

import logging
import signal
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from outbox_publisher import store
from outbox_publisher.metrics import PublisherMetrics
from outbox_publisher.publisher import ProducerFactory, Publisher
from outbox_publisher.settings import PublisherSettings
from prequal.kafka import EventProducer, create_producer
from prequal.metrics import db_query_histogram, serve_metrics
from prequal.startup import start

log = logging.getLogger("outbox_publisher")


class BacklogCollector(Collector):
    """Outbox backlog and the age of its oldest row, queried when Prometheus scrapes."""

    def __init__(self, database_url: str, latency: Histogram) -> None:
        self.database_url = database_url
        self.latency = latency.labels("outbox_backlog")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with psycopg.connect(self.database_url, connect_timeout=2, autocommit=True) as conn:
                started = time.perf_counter()
                rows, age = store.backlog(conn)
                self.latency.observe(time.perf_counter() - started)
        except psycopg.Error:
            return  # no figure beats a wrong one; the database being down shows elsewhere
        yield GaugeMetricFamily("prequal_outbox_backlog", "Unpublished outbox rows", value=rows)
        yield GaugeMetricFamily(
            "prequal_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row",
            value=age,
        )


def build(
    settings: PublisherSettings, producers: ProducerFactory | None = None
) -> tuple[Publisher, CollectorRegistry]:
    """The publisher and its registry; tests may hand in their own producer factory."""
    registry = CollectorRegistry()
    url = settings.database_url.get_secret_value()
    registry.register(BacklogCollector(url, db_query_histogram(registry)))

    def connect() -> psycopg.Connection[Any]:
        # The publisher's commits only delete (or mark) rows Kafka already has. Should a crash
        # lose such a commit, the rows come back and are re-sent with the same ce_id, which
        # consumers dedupe on: no need to wait for the WAL flush on every batch.
        #
        # No bitmap scans: the outbox is a queue, its partial index full of entries for rows
        # deleted since the last vacuum. A bitmap scan visits all of them on every claim (4 ms
        # for an empty outbox after 26,000 deletions); the ordered index scan stops at the
        # batch size and marks dead entries as it passes, so the next claim skips them.
        session = settings.session_options()
        options = f"-c synchronous_commit=off -c enable_bitmapscan=off {session.pop('options')}"
        return psycopg.connect(
            url,
            connect_timeout=5,
            application_name=settings.service_name,
            options=options,
            **session,
        )

    def producer(worker: int) -> EventProducer:
        # Failures only: success is "flushed with no failure" (see batches.Deliveries).
        return create_producer(
            settings.kafka_connection(),
            f"{settings.service_name}-{worker}",
            {"delivery.report.only.error": True},
        )

    metrics = PublisherMetrics(registry)
    for topic in (settings.topic_applications_submitted, settings.topic_credit_reports):
        metrics.published.labels(topic)  # exported at 0, so the first error is an increase
        metrics.errors.labels(topic)
    publisher = Publisher(settings, connect, producers or producer, metrics)
    return publisher, registry


def main() -> int:
    settings = start("outbox-publisher", PublisherSettings)
    publisher, registry = build(settings)

    def on_signal(signum: int, _frame: types.FrameType | None) -> None:
        log.info("signal %d: finishing the current batch", signum)
        publisher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = serve_metrics(
        settings.metrics_host,
        settings.metrics_port,
        healthy=publisher.healthy,
        registry=registry,
    )
    log.info(
        "publishing to %s; metrics on http://%s:%d/metrics",
        settings.kafka_bootstrap_servers,
        settings.metrics_host,
        settings.metrics_port,
    )
    try:
        publisher.run()
    finally:
        server.shutdown()
    return 1 if publisher.failed else 0


if __name__ == "__main__":
    sys.exit(main())
