"""The consumer runtime's metrics: the names the dashboards and alerts use."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prequal.dlq import dlq_topic
from prequal.metrics import db_query_histogram

PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OUTCOMES = ("processed", "duplicate", "retried", "dead_lettered")


class ConsumerMetrics:
    """The names the dashboards and alerts use (docs/decision-path.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "consumer_consumed_records",
            "Records received from Kafka, each counted once whatever its outcome",
            ["topic", "group"],
            registry=registry,
        )
        self.records = Counter(
            "consumer_records",
            "Consumed records by outcome: processed, duplicate, retried, dead_lettered",
            ["topic", "group", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "consumer_lag",
            "Records on this member's partitions not consumed yet",
            ["topic", "group"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "dlq_records", "Records written to a dead-letter topic", ["topic"], registry=registry
        )
        self.processing = Histogram(
            "consumer_processing_seconds",
            "Time from a record's batch starting to its effects being committed",
            ["topic", "group"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.db_latency = db_query_histogram(registry)

    def start(self, topic: str, group: str) -> None:
        """Exports every series at 0 before the first record, so `increase()` sees the first one."""
        self.consumed.labels(topic, group)
        for outcome in OUTCOMES:
            self.records.labels(topic, group, outcome)
        self.lag.labels(topic, group)
        self.dead_lettered.labels(dlq_topic(topic))
        self.processing.labels(topic, group)
        self.db_latency.labels("consumer_batch")

    def committed(self, topic: str, group: str, outcomes: dict[str, int], elapsed: float) -> None:
        """A batch's transaction committed: its records' outcomes and processing time."""
        histogram = self.processing.labels(topic, group)
        for _ in range(sum(outcomes.values())):
            histogram.observe(elapsed)
        for outcome, count in outcomes.items():
            if count:
                self.records.labels(topic, group, outcome).inc(count)
