"""Per-client rate limits that hold across every API process.

Each (client, scope) has one token bucket, shared by all replicas, in PostgreSQL
(`rate_limit_buckets`, prequal_api.rate_limit_store): `rate` tokens a second up to `burst`.
A process does not spend the shared bucket request by request: it **leases** a slice of it
(`lease_size`: a tenth of the burst, at least one token) with one statement, and spends the
slice locally, so most requests cost a dict lookup and one request in `lease_size` a round
trip. Concurrent requests of one client in one process wait for one lease, not one each.

Precision. Every token spent was first taken from the shared bucket, so over any interval T a
client gets at most `burst + rate × T` plus the tokens the P processes held when the interval
began: the worst-case overshoot is one lease per process, `P × lease_size` (P × 10 % of the
burst; with the defaults and 3 replicas, 30 POSTs and 120 GETs once, not per second). A slice
is never returned: a process that stops, or drops an idle client's entry after a minute,
loses its unspent tokens (the client gets fewer, never more).

Refusals. When the shared bucket cannot grant a token the process answers 429 and remembers,
until the bucket will have refilled a whole lease, that this client is refused: an abusive
client meets a dict lookup, not a database statement, and `Retry-After` tells it the same
time. Under sustained overload each process leases about `rate / lease_size` times a second.

Outages. A lease that cannot reach PostgreSQL raises the pool's or psycopg's error, which the
API answers with its usual 503 + `Retry-After`: the limiter never fails open on its own. A
request spending tokens already leased goes on to its handler, which needs the database too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prequal_api.errors import ApiError

# A lease is this fraction of the burst: the bound on the overshoot per process.
LEASE_FRACTION = 0.1
_IDLE_SECONDS = 60.0


def lease_size(burst: float) -> int:
    """Tokens one lease asks for: a tenth of the burst, at least one."""
    return max(1, math.floor(burst * LEASE_FRACTION))


@dataclass(frozen=True)
class Lease:
    """What the shared bucket granted, and its level (in tokens) right after."""

    granted: int
    level: float


class LeaseStore(Protocol):
    async def lease(
        self, client_id: str, scope: str, rate: float, burst: float, want: int
    ) -> Lease: ...


@dataclass
class _Slice:
    """This process's share of one client's bucket."""

    tokens: int = 0
    refused_until: float = 0.0
    used: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RateLimiter:
    """`rate` requests per second per client with bursts of `burst`, shared by every process
    leasing from `store` under `scope`; rate 0 disables it."""

    def __init__(
        self,
        scope: str,
        rate: float,
        burst: float,
        store: LeaseStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scope = scope
        self.rate = rate
        self.burst = burst
        self.lease_size = lease_size(burst)
        self._store = store
        self._clock = clock
        self._slices: dict[str, _Slice] = {}
        self._swept = clock()

    async def check(self, client_id: str) -> None:
        """Takes one token for `client_id`, or raises the 429 with the seconds to wait."""
        if self.rate <= 0:
            return
        now = self._clock()
        self._sweep(now)
        held = self._slices.get(client_id)
        if held is None:
            held = self._slices[client_id] = _Slice()
        held.used = now
        if held.tokens > 0:  # the hot path: no await, no database
            held.tokens -= 1
            return
        async with held.lock:
            # Another request of this client may have leased while this one waited.
            if held.tokens > 0:
                held.tokens -= 1
                return
            if now < held.refused_until:
                raise self._refusal(held.refused_until - now)
            lease = await self._store.lease(
                client_id, self.scope, self.rate, self.burst, self.lease_size
            )
            if lease.granted > 0:
                held.tokens = lease.granted - 1
                return
            # Refused until the shared bucket holds a whole lease again (or all it can hold).
            wait = max(0.0, (min(self.lease_size, self.burst) - lease.level) / self.rate)
            held.refused_until = self._clock() + wait
            raise self._refusal(wait)

    def _refusal(self, wait: float) -> ApiError:
        seconds = max(1, math.ceil(wait))
        return ApiError(
            429,
            "RATE_LIMITED",
            f"too many requests from this client; retry after {seconds} s",
            headers={"Retry-After": str(seconds)},
        )

    def _sweep(self, now: float) -> None:
        """Drops clients idle for a minute (and their unspent tokens): memory follows the
        active clients."""
        if now - self._swept < _IDLE_SECONDS:
            return
        self._swept = now
        idle = [
            key
            for key, held in self._slices.items()
            if now - held.used > _IDLE_SECONDS and not held.lock.locked()
        ]
        for key in idle:
            del self._slices[key]

    def idle_horizon_seconds(self) -> float:
        """After this long without a lease the shared bucket is full: its row can go."""
        return self.burst / self.rate if self.rate > 0 else 0.0
