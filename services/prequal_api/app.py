"""The composition root: settings → pool, keyring, use cases, metrics → a FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from prequal import pan
from prequal_api.docs import install_docs
from prequal_api.errors import install_error_handlers
from prequal_api.metrics import ApiMetrics, MetricsMiddleware, TimedConnectionPool
from prequal_api.routes import router
from prequal_api.services import Services
from prequal_api.settings import ApiSettings
from prequal_api.status import StatusService
from prequal_api.submission import SubmissionService


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
            "options": "-c statement_timeout=5000",
        },
        open=False,
    )


def create_app(settings: ApiSettings) -> FastAPI:
    pool = create_pool(settings)
    keyring = pan.Keyring(settings.keyring(), settings.pan_active_key_id)
    metrics = ApiMetrics(CollectorRegistry())
    metrics.watch_pool(pool)
    services = Services(
        pool=pool,
        pool_timeout=settings.db_pool_timeout_seconds,
        submission=SubmissionService(
            pool=pool,
            keyring=keyring,
            blind_index_key=settings.blind_index_key(),
            topic=settings.topic_applications_submitted,
            actor=settings.service_name,
            pool_timeout=settings.db_pool_timeout_seconds,
        ),
        status=StatusService(
            pool=pool,
            keyring=keyring,
            actor=settings.service_name,
            pool_timeout=settings.db_pool_timeout_seconds,
        ),
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # wait=False: a database that is down now makes requests answer 503, not the process die.
        await pool.open(wait=False)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Loan prequalification API",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Prometheus metrics come from our middleware; FastAPI's OpenTelemetry hooks would
        # only cost time per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    install_error_handlers(app, settings.retry_after_seconds)
    install_docs(app)
    app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
