"""The cost per request of the shared rate limits (prequal_api.rate_limits) on a real, durable
PostgreSQL, through the API's own lease statement and an asyncio pool like the API's.

- `rate_limit_lease_p50_ms`/`_p99_ms`: one lease (the `INSERT … ON CONFLICT DO UPDATE`),
  three limiters ("processes", each with its own pool) leasing for one client at once, so the
  row lock is contended as with three replicas;
- `rate_limit_lease_alone_p50_ms` one lease at a time, uncontended, beside
  `rate_limit_select1_p50_ms`, a `SELECT 1` through the same pool (the floor of any round
  trip on this machine at this moment), and `rate_limit_lease_logged_alone_p50_ms` the same
  lease with the table made LOGGED for a moment (what UNLOGGED saves: the commit's WAL flush);
- `rate_limit_hot_check_us`: a check that spends a token already leased (no database);
- `rate_limit_post_check_us`, `rate_limit_get_check_us`: the mean wall time of a check with
  the default bursts (leases of 10 and 40), leases included: the amortized cost per request;
- `rate_limit_refused_check_us`: a check refused from memory after the bucket ran dry, and
  `rate_limit_refused_statements` how many leases 5,000 such checks caused.

The rate is set far above what the loop reaches, so only the lease size sets how often a
lease happens (the default rates would refuse most of the loop).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from devstack.postgres import Postgres
from prequal.db import migrate
from prequal_api.errors import ApiError
from prequal_api.rate_limit_store import PostgresLeases
from prequal_api.rate_limits import Lease, RateLimiter

CHECKS = 20_000
PROCESSES = 3
REFUSED_CHECKS = 5_000
ROUND_TRIPS = 1_000


class TimedLeases:
    def __init__(self, store: PostgresLeases) -> None:
        self.store = store
        self.samples: list[float] = []

    async def lease(
        self, client_id: str, scope: str, rate: float, burst: float, want: int
    ) -> Lease:
        started = time.perf_counter()
        lease = await self.store.lease(client_id, scope, rate, burst, want)
        self.samples.append((time.perf_counter() - started) * 1000)
        return lease


async def _checks(limiter: RateLimiter, client: str, count: int) -> float:
    """Mean wall microseconds per check."""
    started = time.perf_counter()
    for _ in range(count):
        await limiter.check(client)
    return (time.perf_counter() - started) / count * 1e6


async def _round_trips(
    pool: AsyncConnectionPool, store: PostgresLeases
) -> tuple[list[float], list[float]]:
    """Milliseconds of uncontended leases and of `SELECT 1`, interleaved."""
    alone: list[float] = []
    select1: list[float] = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        await store.lease("alone", "post", 1e9, 100.0, 10)
        alone.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        select1.append((time.perf_counter() - started) * 1000)
    return alone, select1


async def _measure(url: str) -> dict[str, float]:
    pools = [AsyncConnectionPool(url, min_size=2, max_size=4, open=False) for _ in range(PROCESSES)]
    for pool in pools:
        await pool.open(wait=True)
    try:
        stores = [TimedLeases(PostgresLeases(pool, 5.0)) for pool in pools]
        figures: dict[str, float] = {}
        for scope, burst in (("post", 100.0), ("get", 400.0)):
            limiters = [RateLimiter(scope, 1e9, burst, store) for store in stores]
            await _checks(limiters[0], "warm", 1000)
            means = await asyncio.gather(
                *(_checks(limiter, "bench", CHECKS) for limiter in limiters)
            )
            figures[f"rate_limit_{scope}_check_us"] = round(statistics.mean(means), 2)
        samples = sorted(s for store in stores for s in store.samples)
        figures["rate_limit_lease_p50_ms"] = round(statistics.median(samples), 3)
        figures["rate_limit_lease_p99_ms"] = round(samples[int(len(samples) * 0.99)], 3)

        alone, select1 = await _round_trips(pools[0], stores[0].store)
        figures["rate_limit_lease_alone_p50_ms"] = round(statistics.median(alone), 3)
        figures["rate_limit_select1_p50_ms"] = round(statistics.median(select1), 3)
        async with pools[0].connection() as conn:
            await conn.execute("ALTER TABLE rate_limit_buckets SET LOGGED")
        logged, _ = await _round_trips(pools[0], stores[0].store)
        async with pools[0].connection() as conn:
            await conn.execute("ALTER TABLE rate_limit_buckets SET UNLOGGED")
        figures["rate_limit_lease_logged_alone_p50_ms"] = round(statistics.median(logged), 3)

        hot = RateLimiter("post", 1e9, 1e9, stores[0])  # one lease of 10^8 tokens
        await hot.check("hot")
        figures["rate_limit_hot_check_us"] = round(await _checks(hot, "hot", CHECKS), 3)

        dry = RateLimiter("post", 0.001, 100, stores[0])
        before = len(stores[0].samples)
        refused = 0
        started = time.perf_counter()
        for _ in range(100 + REFUSED_CHECKS):
            try:
                await dry.check("abuser")
            except ApiError:
                refused += 1
        elapsed = time.perf_counter() - started
        figures["rate_limit_refused_check_us"] = round(elapsed / (100 + REFUSED_CHECKS) * 1e6, 2)
        figures["rate_limit_refused_statements"] = len(stores[0].samples) - before
        assert refused == REFUSED_CHECKS, refused
        return figures
    finally:
        for pool in pools:
            await pool.close()


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    try:
        url = postgres.create_database("bench_rate_limits")
        migrate.upgrade(url)
        return asyncio.run(_measure(url))
    finally:
        postgres.stop()
