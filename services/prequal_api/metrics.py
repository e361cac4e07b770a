"""The API's Prometheus metrics and the ASGI middleware that records requests.

A pure ASGI middleware (not BaseHTTPMiddleware) keeps the per-request cost to a few
microseconds; it also assigns the request id every error body and log line carries.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prequal.metrics import db_query_histogram

_REJECTIONS = {409: "duplicate", 422: "invalid", 503: "unavailable"}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "prequal_api_requests",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "prequal_api_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "prequal_api_requests_in_flight", "HTTP requests being served", registry=registry
        )
        self.created = Counter(
            "prequal_applications_created", "Applications accepted (202)", registry=registry
        )
        self.rejected = Counter(
            "prequal_applications_rejected",
            "Applications refused, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in _REJECTIONS.values():
            self.rejected.labels(reason)
        self.db_latency = db_query_histogram(registry)

    def watch_pool(self, pool: AsyncConnectionPool) -> None:
        self.registry.register(PoolCollector(pool))
        if isinstance(pool, TimedConnectionPool):
            pool.observe = self.db_latency.labels("api_request").observe


Connection = AsyncConnection[Any]


class TimedConnectionPool(AsyncConnectionPool[Connection]):
    """Times how long each checkout keeps its connection: the database work of one request."""

    observe: Any = None

    # Same signature as the base class, whose `timeout` bounds the wait for a connection.
    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Connection]:  # noqa: ASYNC109
        async with super().connection(timeout) as conn:
            started = time.perf_counter()
            try:
                yield conn
            finally:
                if self.observe is not None:
                    self.observe(time.perf_counter() - started)


class PoolCollector(Collector):
    """Connections in use and idle, read from the pool when Prometheus scrapes."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        family = GaugeMetricFamily(
            "prequal_db_pool_connections", "Database pool connections", labels=["state"]
        )
        family.add_metric(["in_use"], size - idle)
        family.add_metric(["idle"], idle)
        yield family
        yield GaugeMetricFamily(
            "prequal_db_pool_max_connections",
            "Connections the pool may open",
            value=stats.get("pool_max", self.pool.max_size),
        )
        yield GaugeMetricFamily(
            "prequal_db_pool_requests_waiting",
            "Requests queued for a connection",
            value=stats.get("requests_waiting", 0),
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status)).inc()
            if method == "POST" and route == "/applications" and status in _REJECTIONS:
                self.metrics.rejected.labels(_REJECTIONS[status]).inc()


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Any = scope.get("headers", [])
    for key, value in headers:
        if key == name:
            text: str = value.decode("latin-1")[:64]
            return text
    return None
