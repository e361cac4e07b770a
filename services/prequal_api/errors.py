"""One error shape for every failure: `{error_code, message, details, request_id}`."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from prequal.db.outages import is_outage
from prequal.pan import PanDecryptionError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        # Fields beside the shared four (the 409's application_id).
        self.extra = extra or {}


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body = {
        "error_code": error.error_code,
        "message": error.message,
        "details": error.details,
        "request_id": request_id_of(request),
        **error.extra,
    }
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "path", "query", "header")]
    return ".".join(parts) or "body"


def validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    # Only the field and the reason: the input may be a PAN and is never echoed.
    return [
        {"field": _field_name(tuple(err.get("loc", ()))), "message": str(err.get("msg", ""))}
        for err in errors
    ]


def malformed_body(what: str) -> ApiError:
    """A body that is not a JSON document at all: a 422 in the one shape, like a bad field."""
    return ApiError(
        422,
        "MALFORMED_BODY",
        f"{what}; send one JSON object with Content-Type: application/json",
        [{"field": "body", "message": what}],
    )


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this request's path, for a 405's `Allow`.

    Starlette's 405 names only the methods of the first route whose path matched, so a path
    served by two routes (GET and POST /webhooks/endpoints) answered `Allow: POST`; the
    document declares both, and RFC 9110 wants all of them. Each method is tried against the
    app's routes through their public `matches` (FastAPI nests included routers).
    """
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        if any(err.get("type") == "json_invalid" for err in errors):
            # FastAPI locates a JSON syntax error at ("body", <character offset>): say so plainly.
            return error_response(request, malformed_body("the body is not valid JSON"))
        details = validation_details(errors)
        fields = ", ".join(sorted({d["field"] for d in details}))
        return error_response(
            request, ApiError(422, "VALIDATION_ERROR", f"invalid fields: {fields}", details)
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:
            # FastAPI's "There was an error parsing the body": one answer for every bad body.
            return error_response(request, malformed_body("the body could not be read"))
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status_code, "HTTP_ERROR"
        )
        # Keep the exception's headers: a 405's `Allow` lists the methods (RFC 9110 requires it).
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allow := allowed_methods(request)):
            headers["Allow"] = allow
        return error_response(
            request, ApiError(exc.status_code, code, str(exc.detail), headers=headers)
        )

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            request,
            ApiError(
                503,
                "DATABASE_UNAVAILABLE",
                "the database is unreachable; retry later",
                headers={"Retry-After": str(retry_after_seconds)},
            ),
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        # A database that answers but cannot do the work now (read-only after a failover, disk
        # full, admin shutdown) is an outage like one that does not answer: 503, never 500.
        if is_outage(exc):
            return await on_database_down(request, exc)
        # Anything else is our bug, not the client's: the one error shape, with the request id
        # to find it by. Only the SQLSTATE is logged: a server message can quote row values.
        assert isinstance(exc, psycopg.Error)
        log.error(
            "database error %s (SQLSTATE %s), request %s",
            type(exc).__name__,
            exc.sqlstate,
            request_id_of(request),
        )
        return error_response(
            request, ApiError(500, "INTERNAL_ERROR", "the request failed on our side; retry later")
        )

    async def on_decryption(request: Request, exc: Exception) -> JSONResponse:
        log.error("stored PAN could not be decrypted: %s", exc)
        return error_response(
            request, ApiError(500, "PAN_DECRYPTION_FAILED", "the stored PAN could not be read")
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(PoolTimeout, on_database_down)
    app.add_exception_handler(psycopg.OperationalError, on_database_down)
    app.add_exception_handler(psycopg.Error, on_database_error)
    app.add_exception_handler(PanDecryptionError, on_decryption)
