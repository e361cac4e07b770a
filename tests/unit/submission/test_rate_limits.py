"""The lease arithmetic of the shared rate limits (prequal_api.rate_limits), with a fake clock.

Several `RateLimiter`s stand for several API processes; they lease from one in-memory bucket
that does what the lease statement does in PostgreSQL (refill since the last lease up to the
burst, take whole tokens up to the lease size). The statement itself is tested against real
PostgreSQL in tests/integration/submission/test_api_shared_rate_limits.py.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import psycopg
import pytest

from prequal_api.errors import ApiError
from prequal_api.rate_limits import Lease, RateLimiter, lease_size


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SharedBuckets:
    """The database's buckets, on the same fake clock."""

    clock: Clock
    rows: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    calls: int = 0
    gate: asyncio.Event | None = None
    down: bool = False

    async def lease(
        self, client_id: str, scope: str, rate: float, burst: float, want: int
    ) -> Lease:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise psycopg.OperationalError("connection refused")
        now = self.clock()
        tokens, updated = self.rows.get((client_id, scope), (burst, now))
        refilled = min(burst, tokens + rate * max(0.0, now - updated))
        taken = min(want, max(0, math.floor(refilled)))
        self.rows[client_id, scope] = (refilled - taken, now)
        return Lease(taken, refilled - taken)


def admitted(limiter: RateLimiter, client: str = "c") -> bool:
    try:
        asyncio.run(limiter.check(client))
    except ApiError as refused:
        status = refused.status
    else:
        return True
    assert status == 429
    return False


def processes(count: int, rate: float, burst: float) -> tuple[list[RateLimiter], SharedBuckets]:
    clock = Clock()
    store = SharedBuckets(clock)
    return [RateLimiter("post", rate, burst, store, clock) for _ in range(count)], store


def test_a_lease_is_a_tenth_of_the_burst_and_at_least_one_token() -> None:
    assert [lease_size(b) for b in (100, 400, 2, 9.9, 10, 0.5)] == [10, 40, 1, 1, 1, 1]


def test_a_process_asks_the_database_once_per_lease_not_once_per_request() -> None:
    [limiter], store = processes(1, rate=50, burst=100)
    assert all(admitted(limiter) for _ in range(100))
    assert store.calls == 10
    assert not admitted(limiter)


def test_three_processes_together_admit_the_burst_not_three_bursts() -> None:
    limiters, _ = processes(3, rate=1, burst=30)
    results = [admitted(limiters[i % 3]) for i in range(90)]
    assert sum(results) == 30  # a per-process bucket would have admitted 90


def test_the_worst_case_overshoot_is_one_lease_per_process() -> None:
    """Each process holds an almost whole lease, then the bucket refills to its burst: in
    the next instant the client gets the burst plus what the processes held, never more."""
    limiters, store = processes(3, rate=10, burst=100)
    for limiter in limiters:
        assert admitted(limiter)  # leases 10, spends 1, holds 9
    store.clock.now += 60  # the shared bucket is full again
    burst_now = sum(admitted(limiters[i % 3]) for i in range(400))
    assert burst_now == 100 + 3 * 9
    assert burst_now <= 100 + 3 * limiters[0].lease_size


def test_the_shared_bucket_refills_at_the_rate_across_processes() -> None:
    limiters, store = processes(2, rate=10, burst=20)
    assert sum(admitted(limiters[i % 2]) for i in range(100)) == 20
    store.clock.now += 3.0  # 30 tokens of refill, capped at the burst of 20
    assert sum(admitted(limiters[i % 2]) for i in range(100)) == 20
    store.clock.now += 0.5  # 5 tokens
    assert sum(admitted(limiters[i % 2]) for i in range(100)) == 5  # every whole token refilled


def test_a_refusal_is_remembered_until_a_whole_lease_refills_and_retry_after_says_so() -> None:
    [limiter], store = processes(1, rate=2, burst=50)  # lease 5
    assert sum(admitted(limiter) for _ in range(50)) == 50
    with pytest.raises(ApiError) as refused:
        asyncio.run(limiter.check("c"))
    calls = store.calls
    assert refused.value.headers["Retry-After"] == "3"  # 5 tokens at 2/s: 2.5 s
    store.clock.now += 2.4
    assert not admitted(limiter)
    assert store.calls == calls  # refused from memory: an abusive client costs no statement
    store.clock.now += 0.2
    assert sum(admitted(limiter) for _ in range(10)) == 5
    assert store.calls == calls + 2  # the lease, then the next refusal


def test_concurrent_requests_of_one_client_in_one_process_wait_for_one_lease() -> None:
    [limiter], store = processes(1, rate=50, burst=100)

    async def scenario() -> None:
        store.gate = asyncio.Event()
        checks = [asyncio.create_task(limiter.check("c")) for _ in range(8)]
        await asyncio.sleep(0)
        store.gate.set()
        await asyncio.gather(*checks)

    asyncio.run(scenario())
    assert store.calls == 1


def test_clients_and_scopes_have_their_own_buckets() -> None:
    clock = Clock()
    store = SharedBuckets(clock)
    post = RateLimiter("post", 1, 2, store, clock)
    get = RateLimiter("get", 1, 2, store, clock)
    assert [admitted(post), admitted(post), admitted(post)] == [True, True, False]
    assert admitted(post, "other")
    assert admitted(get)


def test_a_database_outage_fails_the_lease_closed_but_tokens_in_hand_still_count() -> None:
    [limiter], store = processes(1, rate=50, burst=100)
    assert admitted(limiter)  # holds 9
    store.down = True
    assert all(admitted(limiter) for _ in range(9))
    with pytest.raises(psycopg.OperationalError):  # the API answers it with its 503
        asyncio.run(limiter.check("c"))


def test_rate_zero_disables_the_limit_without_asking_the_database() -> None:
    [limiter], store = processes(1, rate=0, burst=1)
    assert all(admitted(limiter) for _ in range(50))
    assert store.calls == 0


def test_an_idle_client_is_forgotten_with_its_unspent_tokens() -> None:
    [limiter], store = processes(1, rate=1, burst=100)
    assert admitted(limiter)  # holds 9 of the shared 100
    store.clock.now += 61
    assert admitted(limiter, "other")  # a request after a minute sweeps idle clients
    assert admitted(limiter)
    assert store.calls == 3  # "c" leased again: its 9 tokens were dropped, never handed out
