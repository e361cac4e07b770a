"""Abuse limits at the API: the request-body cap (per-client rate limits: rate_limits.py).

The body cap is checked while the body streams in (Content-Length first, then the bytes as
they arrive), so an oversized or endless body is refused with a 413 before it is buffered.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prequal_api.errors import ApiError, error_response


class BodyTooLargeError(HTTPException):
    """An HTTPException so FastAPI's body reading passes it through (it maps others to 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware:
    """Refuses bodies over `limit` bytes with a 413, while they stream in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                # Out here no exception handler runs: answer in the error shape ourselves.
                too_large = ApiError(413, "PAYLOAD_TOO_LARGE", BodyTooLargeError(self.limit).detail)
                await error_response(Request(scope), too_large)(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        await self.app(scope, limited, send)
