"""Abuse limits at the API: per-client rate limits and a request-body cap.

Rate limits are token buckets per (client, route kind) **in this process**: with N API
replicas a client gets up to N times the configured rate (the Service spreads connections);
the Ingress adds per-source-address limits at the edge (chart values). Counters in PostgreSQL
would make the limit global at the cost of a write per request; the bucket costs a dict lookup.
Buckets of clients idle for a minute are dropped, so memory follows the active clients.

The body cap is checked while the body streams in (Content-Length first, then the bytes as
they arrive), so an oversized or endless body is refused with a 413 before it is buffered.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prequal_api.errors import ApiError, error_response

_IDLE_SECONDS = 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """`rate` requests per second per client with bursts of `burst`; rate 0 disables it."""

    rate: float
    burst: float
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _swept: float = field(default_factory=time.monotonic)

    def check(self, client_id: str) -> None:
        """Takes one token for `client_id`, or raises the 429 with the seconds to wait."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            bucket = self._buckets[client_id] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            self._sweep(now)
            return
        wait = math.ceil((1 - bucket.tokens) / self.rate)
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"too many requests from this client; retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def _sweep(self, now: float) -> None:
        if now - self._swept < _IDLE_SECONDS:
            return
        self._swept = now
        idle = [k for k, b in self._buckets.items() if now - b.updated > _IDLE_SECONDS]
        for key in idle:
            del self._buckets[key]


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
