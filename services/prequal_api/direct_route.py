"""The hot routes' direct path: well-formed requests answered with plain calls.

FastAPI's request handler is generic: for every request it walks the route's dependency tree,
validates each header, path and query parameter and the body through its own field models, and
builds the keyword arguments of the endpoint (about a tenth of the API's CPU per application in
the e2e profiles). `POST /applications` and `GET /applications/{id}/status`, the two calls every
application makes, get a *shortcut*: the same steps as plain calls (`auth.authorize`: 401, 403,
429 in that order; the same JSON parse and model validation; the endpoint itself; FastAPI's own
response serializer).

A shortcut answers only requests it is sure about and returns None for anything else (a body
that fails validation, another content type, a query string, an id in an unusual spelling);
FastAPI's own handler then answers, reading the body FastAPI's request already cached. So every
error answer is FastAPI's, byte for byte, and the OpenAPI document is generated from the same
route declarations as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Shortcut = Callable[[Request, APIRoute], Awaitable[Response | None]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_SHORTCUTS: dict[Callable[..., Any], Shortcut] = {}


def shortcut(direct: Shortcut) -> Callable[[Endpoint], Endpoint]:
    """Marks an endpoint as answered by `direct` first (put it below the route decorator)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _SHORTCUTS[endpoint] = direct
        return endpoint

    return mark


def has_shortcut(endpoint: Callable[..., Any]) -> bool:
    return endpoint in _SHORTCUTS


class DirectRoute(APIRoute):
    """An APIRoute whose handler tries the endpoint's shortcut before FastAPI's own handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        general = super().get_route_handler()
        direct = _SHORTCUTS.get(self.endpoint)
        if direct is None:
            return general
        route = self

        async def handler(request: Request) -> Response:
            response = await direct(request, route)
            if response is None:
                response = await general(request)
            return response

        return handler
