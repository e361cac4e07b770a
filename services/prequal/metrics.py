"""Serving Prometheus metrics and a liveness answer from a process without a web framework."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
)

# Loopback PostgreSQL answers a statement in well under a millisecond; a batch takes tens.
DB_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def db_query_histogram(registry: CollectorRegistry) -> Histogram:
    """The one database-latency metric every process exports, by unit of work (`operation`)."""
    return Histogram(
        "prequal_db_query_duration_seconds",
        "Time the database took for one unit of work (a request's queries, a batch's transaction)",
        ["operation"],
        buckets=DB_QUERY_BUCKETS,
        registry=registry,
    )


def serve_metrics(
    host: str,
    port: int,
    healthy: Callable[[], bool] = lambda: True,
    registry: CollectorRegistry = REGISTRY,
) -> ThreadingHTTPServer:
    """`/metrics` and `/health` (200 while `healthy()`, else 503) on a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/health"):
                ok = healthy()
                body = b'{"status":"ok"}' if ok else b'{"status":"unhealthy"}'
                self._answer(200 if ok else 503, body, "application/json")
            else:
                self._answer(404, b'{"error_code":"NOT_FOUND"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds are not worth a log line

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
