"""The API's error shape for database failures: an outage is a 503 with Retry-After, anything
else a 500 in the same JSON shape (never a bare text 500 or a dropped connection)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import errors

from prequal_api.errors import install_error_handlers

pytestmark = pytest.mark.unit

ERROR_KEYS = {"error_code", "message", "details", "request_id"}


def _get_raising(exc: psycopg.Error) -> httpx.Response:
    """GET a route that raises `exc`, through the app's own exception handlers."""
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=7)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/boom")

    return asyncio.run(get())


def test_a_database_that_refuses_writes_is_a_503_with_retry_after() -> None:
    response = _get_raising(errors.ReadOnlySqlTransaction("read-only"))
    assert response.status_code == 503
    assert response.json()["error_code"] == "DATABASE_UNAVAILABLE"
    assert response.headers["retry-after"] == "7"


def test_any_other_database_error_is_a_json_500_and_logs_no_server_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_looking = "Failing row contains (Asha, 1990-01-01)"
    with caplog.at_level(logging.ERROR):
        response = _get_raising(errors.CheckViolation(secret_looking))
    assert response.status_code == 500
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert "CheckViolation" in caplog.text
    assert secret_looking not in caplog.text
    assert secret_looking not in response.text
