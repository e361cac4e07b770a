"""What a consumer process is made of: its settings and the wiring around the runtime.

Each consumer service's `main()` loads its settings, builds its handler and calls `build` and
`serve`; everything else (Kafka clients, the DLQ writer, the database connection, `/metrics` and
`/health`, SIGTERM) is the same for every consumer and lives here once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import types
from typing import Any, TypeVar

import psycopg
from prometheus_client import CollectorRegistry
from pydantic import Field

from prequal.consumer import (
    ConsumerMetrics,
    ConsumerRuntime,
    DeadLetterWriter,
    Handler,
    RetryPolicy,
)
from prequal.kafka import create_consumer, create_producer
from prequal.metrics import serve_metrics
from prequal.settings import DatabaseSettings, KafkaSettings, SessionSettings

log = logging.getLogger(__name__)

C = TypeVar("C")


class ConsumerSettings(DatabaseSettings, SessionSettings, KafkaSettings):
    """Settings every consumer reads (docs/configuration.md)."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int
    consumer_group: str
    # Records applied per database transaction (one commit, one WAL flush, for all of them).
    consumer_max_batch: int = Field(default=500, ge=1, le=10_000)
    # Attempts for a record that fails for its own reasons before it is dead-lettered.
    consumer_max_attempts: int = Field(default=3, ge=1, le=20)
    consumer_retry_backoff_seconds: float = Field(default=0.2, gt=0)


def build(
    settings: ConsumerSettings,
    *,
    service: str,
    topic: str,
    handler: Handler[C],
    registry: CollectorRegistry,
) -> ConsumerRuntime[C]:
    url = settings.database_url.get_secret_value()
    client_id = f"{service}-{socket.gethostname()}-{os.getpid()}"

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=5,
            application_name=service,
            **settings.session_options(),
        )

    return ConsumerRuntime(
        topic=topic,
        group=settings.consumer_group,
        consumer=create_consumer(settings.kafka_connection(), settings.consumer_group, client_id),
        handler=handler,
        dead_letters=DeadLetterWriter(create_producer(settings.kafka_connection(), client_id)),
        connect=connect,
        metrics=ConsumerMetrics(registry),
        retry=RetryPolicy(
            max_attempts=settings.consumer_max_attempts,
            initial_backoff=settings.consumer_retry_backoff_seconds,
        ),
        max_batch=settings.consumer_max_batch,
    )


def serve(
    runtime: ConsumerRuntime[C], settings: ConsumerSettings, registry: CollectorRegistry
) -> int:
    """Runs until SIGTERM or SIGINT; the batch in hand is finished and its offsets committed."""

    def on_signal(signum: int, _frame: types.FrameType | None) -> None:
        log.info("signal %d: finishing the batch in hand", signum)
        runtime.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = serve_metrics(
        settings.metrics_host, settings.metrics_port, healthy=runtime.healthy, registry=registry
    )
    log.info(
        "consuming %s as group %s; metrics on http://%s:%d/metrics",
        runtime.topic,
        runtime.group,
        settings.metrics_host,
        settings.metrics_port,
    )
    try:
        runtime.run()
    finally:
        server.shutdown()
    return 0
