"""HTTP handlers: thin, they turn requests into use-case calls and results into responses."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from prequal_api.auth import SCOPE_READ, SCOPE_WRITE, Principal, require_scope
from prequal_api.errors import ApiError
from prequal_api.schemas import (
    Accepted,
    ApplicationRequest,
    ApplicationStatus,
    DuplicateBody,
    ErrorBody,
)
from prequal_api.services import Services

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 413, 422, 429, 503)
}
_POST_ERRORS: dict[int | str, dict[str, Any]] = {**_ERRORS, 409: {"model": DuplicateBody}}
_GET_ERRORS: dict[int | str, dict[str, Any]] = {**_ERRORS, 404: {"model": ErrorBody}}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post(
    "/applications",
    status_code=202,
    response_model=Accepted,
    responses=_POST_ERRORS,
    summary="Submit a loan application",
)
async def submit_application(
    body: ApplicationRequest,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_WRITE, "post"))],
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Accepts the application for prequalification; the decision follows asynchronously."""
    services = _services(request)
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "invalid fields: Idempotency-Key",
            [{"field": "Idempotency-Key", "message": "must not be empty"}],
        )
    result = await services.submission.submit(body, idempotency_key, caller.client_id)
    if not result.replayed:
        services.metrics.created.inc()
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.get(
    "/applications/{application_id}/status",
    response_model=ApplicationStatus,
    responses=_GET_ERRORS,
    summary="Status of an application",
)
async def application_status(
    application_id: uuid.UUID,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_READ, "get"))],
) -> ApplicationStatus:
    """The current status, the decision when there is one, and the PAN masked (owner only)."""
    return await _services(request).status.status(application_id, caller.client_id)


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """The process is up; it says nothing about the database (that is /ready)."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness", responses={503: {"model": ErrorBody}})
async def ready(request: Request) -> dict[str, str]:
    """Ready when the database answers."""
    services = _services(request)
    async with services.pool.connection(timeout=services.pool_timeout) as conn:
        await conn.execute("SELECT 1")
    return {"status": "ready"}
