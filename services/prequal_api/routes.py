"""HTTP handlers: thin, they turn requests into use-case calls and results into responses."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field, WithJsonSchema

from prequal_api.auth import SCOPE_ERASE, SCOPE_READ, SCOPE_WRITE, Principal, require_scope
from prequal_api.errors import ApiError, request_id_of
from prequal_api.schemas import (
    Accepted,
    ApplicationRequest,
    ApplicationStatus,
    DuplicateBody,
    ErrorBody,
)
from prequal_api.services import Services
from prequal_api.waiting import MAX_WAIT_SECONDS, DecisionListener

router = APIRouter()

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
_CHALLENGE = {
    "WWW-Authenticate": {"description": "the bearer challenge", "schema": {"type": "string"}}
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        **({"headers": headers} if headers else {}),
    }


# Every status an operation can answer, each in the one error shape (DESIGN.md, HTTP API).
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("no bearer token, or a token that is invalid or expired", _CHALLENGE),
    403: _error("the token lacks the operation's scope", _CHALLENGE),
    413: _error("the request body is over the size cap"),
    422: _error("a field, header or path value is invalid, or the body is not JSON"),
    429: _error("this client is over its rate limit", _RETRY_AFTER),
    503: _error("the database or the identity provider is unreachable", _RETRY_AFTER),
}
# The 202's links let a client (and a stateful fuzzer) go from a submission to its status.
_STATUS_LINK = {
    "operationId": "getApplicationStatus",
    "parameters": {"application_id": "$response.body#/application_id"},
    "description": "the status of the application just accepted",
}
_POST_ERRORS: dict[int | str, dict[str, Any]] = {
    202: {"description": "accepted; the decision follows", "links": {"GetStatus": _STATUS_LINK}},
    **_ERRORS,
    409: {
        "model": DuplicateBody,
        "description": "this client submitted the same PAN in the last 24 hours",
        "links": {"GetExistingStatus": _STATUS_LINK},
    },
}
_GET_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: _error("no such application for this client"),
}


# Up to 255 characters, not all blank: the blank check is the handler's, so its 422 can say
# "must not be empty"; the document states both so a generated key is one the API takes.
IdempotencyKey = Annotated[
    str,
    Field(max_length=255),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"}),
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post(
    "/applications",
    status_code=202,
    response_model=Accepted,
    responses=_POST_ERRORS,
    summary="Submit a loan application",
    operation_id="submitApplication",
)
async def submit_application(
    body: ApplicationRequest,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_WRITE, "post"))],
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(description="a retry with the same key and body gets the original answer"),
    ] = None,
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
    result = await services.submission.submit(
        body, idempotency_key, caller.client_id, request_id_of(request)
    )
    if not result.replayed:
        services.metrics.created.inc()
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.get(
    "/applications/{application_id}/status",
    response_model=ApplicationStatus,
    responses=_GET_ERRORS,
    summary="Status of an application",
    operation_id="getApplicationStatus",
)
async def application_status(
    application_id: uuid.UUID,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_READ, "get"))],
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="seconds to wait for a final status (long poll); 0 answers at once",
        ),
    ] = 0,
) -> ApplicationStatus:
    """The current status, the decision when there is one, and the PAN masked (owner only).
    With `wait`, a PENDING application's answer comes when it is decided, or after `wait`
    seconds with the status as it is then. Each read is audited under the request's id."""
    status = _services(request).status
    request_id = request_id_of(request)
    if wait == 0:
        return await status.status(application_id, caller.client_id, request_id)
    listener: DecisionListener = request.app.state.decision_listener
    async with listener.watching(application_id) as decided:
        current = await status.status(application_id, caller.client_id, request_id)
        if current.status != "PENDING":
            return current
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(decided.wait(), wait)
    return await status.status(application_id, caller.client_id, request_id)


@router.delete(
    "/applications/{application_id}",
    status_code=204,
    responses={204: {"description": "the personal data is erased"}, **_GET_ERRORS},
    summary="Erase an applicant's personal data",
    operation_id="eraseApplication",
)
async def erase_application(
    application_id: uuid.UUID,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_ERASE, "post"))],
) -> Response:
    """Crypto-shredding: the sealed data key and the personal fields go; the decision stays."""
    await _services(request).erasure.erase(application_id, caller.client_id)
    return Response(status_code=204)


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
