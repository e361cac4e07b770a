"""The composition root: settings → pool, sealer, use cases, metrics → a FastAPI app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from prequal.settings import load_settings
from prequal_api import repository
from prequal_api.auth import KeySet, TokenValidator, http_jwks_fetcher
from prequal_api.docs import install_docs
from prequal_api.errors import install_error_handlers
from prequal_api.key_refresh import ApiKeys, KeyHolder, KeyRefresher
from prequal_api.limits import BodyLimitMiddleware
from prequal_api.metrics import ApiMetrics, MetricsMiddleware, TimedConnectionPool
from prequal_api.rate_limit_store import PostgresLeases, purge_periodically
from prequal_api.rate_limits import RateLimiter
from prequal_api.routes import router
from prequal_api.services import Services
from prequal_api.settings import ApiSettings
from prequal_api.status import ErasureService, StatusService
from prequal_api.submission import SubmissionService
from prequal_api.waiting import DecisionListener
from prequal_api.webhook_endpoints import WebhookEndpoints
from prequal_api.webhook_routes import router as webhook_router

log = logging.getLogger(__name__)


def create_pool(settings: ApiSettings) -> AsyncConnectionPool:
    return TimedConnectionPool(
        settings.database_url.get_secret_value(),
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        # No check on checkout (it costs a round trip per request): a connection that died
        # with a database restart fails its request with a 503 and the pool replaces it.
        kwargs={
            # Statements run in the transactions the code opens, or alone; never in an
            # implicit one left open.
            "autocommit": True,
            "connect_timeout": 3,
            "application_name": settings.service_name,
            # READ COMMITTED whatever the database's or role's default: the 24-hour rule needs
            # each statement after the PAN's lock to see what committed before it was granted
            # (client options override ALTER DATABASE/ROLE settings).
            "options": (
                "-c statement_timeout=5000 -c default_transaction_isolation=read\\ committed"
            ),
        },
        open=False,
    )


async def listen_connection(settings: ApiSettings) -> psycopg.AsyncConnection[object]:
    """The one connection per process that LISTENs for decisions (prequal_api.waiting)."""
    conn: psycopg.AsyncConnection[object] = await psycopg.AsyncConnection.connect(
        settings.database_url.get_secret_value(),
        autocommit=True,
        connect_timeout=3,
        application_name=f"{settings.service_name}-listener",
    )
    return conn


async def purge_idempotency_keys(services: Services, settings: ApiSettings) -> None:
    """Deletes idempotency keys past their retention, every few minutes, in every replica.

    Lookups already ignore expired keys; this only keeps the table small. Concurrent replicas
    delete the same rows harmlessly.
    """
    retention = settings.idempotency_key_retention_hours * 3600
    while True:
        await asyncio.sleep(settings.idempotency_purge_interval_seconds)
        try:
            async with services.pool.connection(timeout=services.pool_timeout) as conn:
                purged = await repository.purge_idempotency_keys(conn, retention)
            if purged:
                log.info("purged %d expired idempotency keys", purged)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("idempotency key purge failed (%s); trying again later", type(exc).__name__)


def create_app(settings: ApiSettings) -> FastAPI:
    pool = create_pool(settings)
    metrics = ApiMetrics(CollectorRegistry())
    metrics.watch_pool(pool)
    keys = KeyHolder(ApiKeys.from_settings(settings))
    refresher = KeyRefresher(keys, lambda: load_settings(ApiSettings), settings.key_refresh_seconds)
    services = Services(
        pool=pool,
        pool_timeout=settings.db_pool_timeout_seconds,
        submission=SubmissionService(
            pool=pool,
            keys=keys,
            topic=settings.topic_applications_submitted,
            actor=settings.service_name,
            pool_timeout=settings.db_pool_timeout_seconds,
            idempotency_retention_seconds=settings.idempotency_key_retention_hours * 3600,
        ),
        status=StatusService(
            pool=pool, pool_timeout=settings.db_pool_timeout_seconds, actor=settings.service_name
        ),
        erasure=ErasureService(
            pool=pool, pool_timeout=settings.db_pool_timeout_seconds, actor=settings.service_name
        ),
        metrics=metrics,
    )

    # Shared by every API process: leases from one bucket per client and scope in PostgreSQL.
    leases = PostgresLeases(pool, settings.db_pool_timeout_seconds)
    rate_limits = {
        "post": RateLimiter(
            "post", settings.rate_limit_post_per_second, settings.rate_limit_post_burst, leases
        ),
        "get": RateLimiter(
            "get", settings.rate_limit_get_per_second, settings.rate_limit_get_burst, leases
        ),
    }
    bucket_horizon = max(limiter.idle_horizon_seconds() for limiter in rate_limits.values())

    listener = DecisionListener(lambda: listen_connection(settings), metrics.registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # wait=False: a database that is down now makes requests answer 503, not the process die.
        await pool.open(wait=False)
        purger = asyncio.create_task(purge_idempotency_keys(services, settings))
        key_refresh = asyncio.create_task(refresher.run())
        bucket_purger = asyncio.create_task(
            purge_periodically(pool, settings.db_pool_timeout_seconds, bucket_horizon)
        )
        listener.start()
        try:
            yield
        finally:
            purger.cancel()
            key_refresh.cancel()
            bucket_purger.cancel()
            await listener.stop()
            await pool.close()

    app = FastAPI(
        title="Loan prequalification API",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs_enabled else None,
        lifespan=lifespan,
        # Prometheus metrics come from our middleware; FastAPI's OpenTelemetry hooks would
        # only cost time per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.webhook_endpoints = WebhookEndpoints(
        pool,
        settings.db_pool_timeout_seconds,
        keys,
        settings.allowed_networks(),
    )
    app.state.decision_listener = listener
    app.state.rate_limits = rate_limits
    app.state.token_validator = TokenValidator(
        keys=KeySet(
            http_jwks_fetcher(settings.jwks_url()),
            cache_seconds=settings.oidc_jwks_cache_seconds,
            min_refetch_seconds=settings.oidc_jwks_min_refetch_seconds,
        ),
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        leeway_seconds=settings.oidc_leeway_seconds,
        cache_seconds=settings.oidc_jwks_cache_seconds,
    )
    install_error_handlers(app, settings.retry_after_seconds)
    if settings.api_docs_enabled:
        install_docs(app, settings.token_url(), settings.oidc_audience)
    app.include_router(router)
    app.include_router(webhook_router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
