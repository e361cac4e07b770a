"""HTTP handlers of webhook endpoints: `/webhooks/endpoints` (scope `webhooks:manage`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from prequal import webhooks
from prequal_api.auth import SCOPE_WEBHOOKS, Principal, require_scope
from prequal_api.errors import ApiError
from prequal_api.schemas import ErrorBody
from prequal_api.webhook_endpoints import WebhookEndpoints

router = APIRouter()

# http(s), a host of letters, digits, dots and hyphens, an optional port, an optional path of
# printable ASCII: what the dispatcher can POST to. Anything else is a 422 naming `url`, and
# nothing is trimmed first: the document's pattern refuses surrounding spaces, so does the API.
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\x21-\x7e]*)?$"


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8,
        max_length=webhooks.URL_MAX_LENGTH,
        pattern=URL_PATTERN,
        description="where decisions are POSTed, signed (http or https, ASCII, no spaces)",
    )


class Endpoint(BaseModel):
    id: uuid.UUID
    url: str
    enabled: bool
    created_at: datetime


class CreatedEndpoint(Endpoint):
    secret: str = Field(
        description="the Standard Webhooks signing secret (`whsec_` + base64); shown only here"
    )


class EndpointList(BaseModel):
    endpoints: list[Endpoint]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("no bearer token, or a token that is invalid or expired"),
    403: _error("the token lacks the scope webhooks:manage"),
    413: _error("the request body is over the size cap"),
    422: _error("a field or path value is invalid, or the body is not JSON"),
    429: _error("this client is over its rate limit"),
    503: _error("the database or the identity provider is unreachable"),
}


def _endpoints(request: Request) -> WebhookEndpoints:
    endpoints: WebhookEndpoints = request.app.state.webhook_endpoints
    return endpoints


def _public(endpoint: webhooks.Endpoint) -> Endpoint:
    return Endpoint(
        id=endpoint.id, url=endpoint.url, enabled=endpoint.enabled, created_at=endpoint.created_at
    )


@router.post(
    "/webhooks/endpoints",
    status_code=201,
    response_model=CreatedEndpoint,
    responses=_ERRORS,
    summary="Register a webhook endpoint",
    operation_id="createWebhookEndpoint",
)
async def create_endpoint(
    body: EndpointRequest,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_WEBHOOKS, "post"))],
) -> CreatedEndpoint:
    """Decisions on this client's applications will be POSTed here, signed with the secret
    in this answer (it is never shown again). A host that is or resolves to a loopback,
    private, link-local, multicast or unspecified address is refused (422 naming `url`)."""
    endpoints = _endpoints(request)
    refused = await endpoints.refusal(body.url)
    if refused is not None:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            "webhooks go only to public addresses",
            [{"field": "url", "message": refused}],
        )
    created = await endpoints.create(caller.client_id, body.url)
    return CreatedEndpoint(**_public(created.endpoint).model_dump(), secret=created.secret)


@router.get(
    "/webhooks/endpoints",
    response_model=EndpointList,
    responses=_ERRORS,
    summary="This client's webhook endpoints",
    operation_id="listWebhookEndpoints",
)
async def list_endpoints(
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_WEBHOOKS, "get"))],
) -> EndpointList:
    """The endpoints this client registered, oldest first, without their secrets."""
    found = await _endpoints(request).list(caller.client_id)
    return EndpointList(endpoints=[_public(e) for e in found])


@router.delete(
    "/webhooks/endpoints/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, 404: _error("no such endpoint for this client")},
    summary="Remove a webhook endpoint",
    operation_id="deleteWebhookEndpoint",
)
async def delete_endpoint(
    endpoint_id: uuid.UUID,
    request: Request,
    caller: Annotated[Principal, Depends(require_scope(SCOPE_WEBHOOKS, "post"))],
) -> Response:
    """Removes the endpoint and its pending deliveries."""
    if not await _endpoints(request).delete(caller.client_id, endpoint_id):
        raise ApiError(404, "NOT_FOUND", "no such webhook endpoint for this client")
    return Response(status_code=204)
