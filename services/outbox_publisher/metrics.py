"""The publisher's Prometheus metrics (the backlog gauges are collected at scrape time, in main)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PublisherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "prequal_outbox_published_records",
            "Outbox records Kafka confirmed",
            ["topic"],
            registry=registry,
        )
        self.errors = Counter(
            "prequal_outbox_publish_errors",
            "Outbox records in batches Kafka did not fully confirm (they stay in the outbox)",
            ["topic"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "prequal_outbox_batch_duration_seconds",
            "Claim, produce, confirm and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30),
            registry=registry,
        )
        self.circuit_open = Gauge(
            "prequal_outbox_circuit_open", "1 while publishing is backing off", registry=registry
        )
        self.producer_replacements = Counter(
            "prequal_outbox_producer_replacements",
            "Worker producers replaced after a batch failed with something other than an outage",
            registry=registry,
        )
        self.lanes_owned = Gauge(
            "prequal_outbox_lanes_owned", "Outbox lanes this instance publishes", registry=registry
        )
