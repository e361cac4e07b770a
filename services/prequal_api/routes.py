"""HTTP handlers: thin, they turn requests into use-case calls and results into responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, serialize_response
from pydantic import Field, WithJsonSchema
from starlette.exceptions import HTTPException

from prequal_api.auth import (
    SCOPE_ERASE,
    SCOPE_READ,
    SCOPE_WRITE,
    Principal,
    authorize,
    require_scope,
)
from prequal_api.direct_route import DirectRoute, shortcut
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

# The hot routes' shortcuts answer well-formed requests with plain calls (direct_route.py).
router = APIRouter(route_class=DirectRoute)

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
IDEMPOTENCY_KEY_MAX = 255
IdempotencyKey = Annotated[
    str,
    Field(max_length=IDEMPOTENCY_KEY_MAX),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"}),
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _submit_directly(request: Request, _route: APIRoute) -> Response | None:
    """`submit_application` for a JSON body that validates; None leaves the rest to FastAPI
    (the same `json.loads` and model validation as FastAPI's: pydantic's JSON mode would read
    `1e5` as 100000 where this reads 100000.0, and the event and idempotency fingerprint carry
    the amount as written)."""
    headers = request.headers
    key = headers.get("idempotency-key")
    if headers.get("content-type") != "application/json" or (
        key is not None and len(key) > IDEMPOTENCY_KEY_MAX
    ):
        return None
    try:
        raw = await request.body()
    except HTTPException:
        raise  # the 413 of the streaming cap (limits.py)
    except Exception:  # noqa: BLE001 - FastAPI's handler answers an unreadable body, as before
        return None
    try:
        body = ApplicationRequest.model_validate(json.loads(raw))
    except Exception:  # noqa: BLE001 - not JSON, not valid: FastAPI's 422 names the fields
        return None
    caller = await authorize(request, headers.get("authorization") or None, SCOPE_WRITE, "post")
    return await submit_application(body, request, caller, key)


@router.post(
    "/applications",
    status_code=202,
    response_model=Accepted,
    responses=_POST_ERRORS,
    summary="Submit a loan application",
    operation_id="submitApplication",
)
@shortcut(_submit_directly)
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


# The canonical spelling only: pydantic and uuid.UUID agree on it (uuid.UUID also takes
# hyphens anywhere, pydantic does not), so other spellings go to FastAPI's validation.
_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")


async def _status_directly(request: Request, route: APIRoute) -> Response | None:
    """`application_status` without `wait` for a canonical id, serialized by FastAPI's own
    response serializer; None leaves the rest (long polls, odd ids) to FastAPI."""
    raw_id = request.path_params.get("application_id", "")
    if request.scope.get("query_string") or not _CANONICAL_UUID.match(raw_id):
        return None
    authorization = request.headers.get("authorization") or None
    caller = await authorize(request, authorization, SCOPE_READ, "get")
    status = await application_status(uuid.UUID(raw_id), request, caller)
    content = await serialize_response(
        field=route.response_field,
        response_content=status,
        include=route.response_model_include,
        exclude=route.response_model_exclude,
        by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset,
        exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none,
        dump_json=True,
    )
    return Response(content=content, media_type="application/json")


@router.get(
    "/applications/{application_id}/status",
    response_model=ApplicationStatus,
    responses=_GET_ERRORS,
    summary="Status of an application",
    operation_id="getApplicationStatus",
)
@shortcut(_status_directly)
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
