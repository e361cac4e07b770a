"""`loan-operator`: the composition root. Builds settings, clients, metrics and the worker
supervisor, registers the kopf handlers and runs kopf in this process."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import kopf
from prometheus_client import start_http_server

from loan_operator.deletion import PipelineDeletion
from loan_operator.handlers import register
from loan_operator.kafka_admin import KafkaAdmins
from loan_operator.kube import Kube, api_client_from_environment
from loan_operator.metrics import Metrics
from loan_operator.orphan_sweep import OrphanSweep
from loan_operator.reconcile import Reconciler
from loan_operator.settings import Settings
from loan_operator.worker import PipelineWorker, Supervisor
from prequal.logging import configure_logging


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loan-operator", description="Reconciles LoanPipeline resources (prequal.dev)."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable)",
    )
    parser.add_argument(
        "--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=True,
        help="no peering (always on: run one replica)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _arguments(argv)
    settings = Settings()
    # The services' JSON lines and redaction, also for kopf's own loggers.
    configure_logging("loan-operator", settings.log_level.upper())
    metrics = Metrics()
    start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
    kube = Kube(api_client_from_environment())
    reconciler = Reconciler(
        kube,
        KafkaAdmins(settings.kafka_identity(), settings.kafka_timeout_seconds),
        metrics,
        key_distribution_seconds=settings.key_distribution_seconds,
        sealing_kem=settings.sealing_kem,
        manage_principals=settings.kafka_security_protocol.startswith("SASL_"),
    )

    deletion = PipelineDeletion(
        reconciler.kafka,
        metrics,
        reconciler.report,
        reconciler.principals,
    )
    sweep = OrphanSweep(
        kube,
        reconciler.kafka,
        namespaces=args.namespace,
        interval=settings.orphan_sweep_seconds,
    )

    def make_worker(body: Mapping[str, Any]) -> PipelineWorker:
        return PipelineWorker(
            body,
            reconciler,
            deletion,
            kube,
            resync=settings.resync_seconds,
            max_backoff=settings.max_backoff_seconds,
        )

    supervisor = Supervisor(make_worker, sweep.saw)
    registry = kopf.OperatorRegistry()
    register(registry, supervisor, deletion, sweep)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )
