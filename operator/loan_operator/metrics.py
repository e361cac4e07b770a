"""The operator's own Prometheus metrics, in a registry of their own (served on METRICS_PORT)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

_PIPELINE = ("namespace", "pipeline")
_CONSUMER = (*_PIPELINE, "consumer")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "loan_operator_reconciles",
            "Convergence passes over a LoanPipeline, by result.",
            [*_PIPELINE, "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "loan_operator_errors",
            "Failed steps, by reason (KafkaUnreachable, ...).",
            [*_PIPELINE, "reason"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "loan_operator_consumer_lag",
            "Total consumer-group lag on the consumer's topic.",
            _CONSUMER,
            registry=self.registry,
        )
        self.desired = Gauge(
            "loan_operator_desired_replicas",
            "Replicas the lag asks for, after stabilization.",
            _CONSUMER,
            registry=self.registry,
        )
        self.replicas = Gauge(
            "loan_operator_replicas",
            "The Deployment's spec.replicas as last read or set.",
            _CONSUMER,
            registry=self.registry,
        )
        self.scalings = Counter(
            "loan_operator_scalings",
            "Replica changes written to a Deployment's scale.",
            _CONSUMER,
            registry=self.registry,
        )

    def forget_consumer(self, namespace: str, pipeline: str, consumer: str) -> None:
        for metric in (self.lag, self.desired, self.replicas):
            with contextlib.suppress(KeyError):
                metric.remove(namespace, pipeline, consumer)
