"""The shared token buckets of prequal_api.rate_limits, in PostgreSQL (migration 0013).

A lease is one statement: it creates the client's bucket full, or refills it for the time since
its last lease (up to the burst), takes up to the tokens asked for (whole tokens only), and
returns what it took and the level left. The row lock of `ON CONFLICT DO UPDATE` orders
concurrent leases of one client from any number of processes; `clock_timestamp()` is read after
that lock, so every process measures refills on the database's one clock, in lock order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from prequal_api.rate_limits import Lease

log = logging.getLogger(__name__)

# The refill is computed once, in a sub-select over the locked row.
LEASE_SQL = """
INSERT INTO rate_limit_buckets AS b (client_id, scope, tokens, granted, updated_at)
VALUES (%(client)s, %(scope)s, %(burst)s - least(%(want)s, floor(%(burst)s)),
        least(%(want)s, floor(%(burst)s))::integer, clock_timestamp())
ON CONFLICT (client_id, scope) DO UPDATE SET (granted, tokens, updated_at) = (
    SELECT taken, refilled - taken, now_
    FROM (
        SELECT refilled, least(%(want)s, greatest(0, floor(refilled)))::integer AS taken, now_
        FROM (
            SELECT least(%(burst)s, b.tokens + %(rate)s
                       * greatest(0, extract(epoch FROM now_ - b.updated_at))) AS refilled,
                   now_
            FROM (SELECT clock_timestamp() AS now_) AS clock
        ) AS refill
    ) AS lease
)
RETURNING granted, tokens
"""

PURGE_SQL = (
    "DELETE FROM rate_limit_buckets "
    "WHERE updated_at < clock_timestamp() - make_interval(secs => %s)"
)

# A bucket idle this long is full whatever the settings of any replica (the defaults fill in
# two seconds): deleting its row changes no answer.
MIN_PURGE_HORIZON_SECONDS = 3600.0
PURGE_INTERVAL_SECONDS = 600.0


class PostgresLeases:
    """Leases from the shared buckets through the API's pool."""

    def __init__(self, pool: AsyncConnectionPool, pool_timeout: float) -> None:
        self._pool = pool
        self._pool_timeout = pool_timeout

    async def lease(
        self, client_id: str, scope: str, rate: float, burst: float, want: int
    ) -> Lease:
        params: dict[str, Any] = {
            "client": client_id,
            "scope": scope,
            "rate": rate,
            "burst": burst,
            "want": want,
        }
        async with self._pool.connection(timeout=self._pool_timeout) as conn:
            cur = await conn.execute(LEASE_SQL, params)
            row = await cur.fetchone()
        assert row is not None
        granted, level = row
        return Lease(int(granted), float(level))


async def purge_idle_buckets(conn: psycopg.AsyncConnection[Any], horizon_seconds: float) -> int:
    """Deletes the buckets without a lease for `horizon_seconds` (full ones); returns how many."""
    cur = await conn.execute(PURGE_SQL, (max(horizon_seconds, MIN_PURGE_HORIZON_SECONDS),))
    return cur.rowcount


async def purge_periodically(
    pool: AsyncConnectionPool, pool_timeout: float, horizon_seconds: float
) -> None:
    """Every API process deletes idle buckets now and then; replicas doing it too is harmless
    (a lease that meets a deleted row starts a full bucket, which the row was anyway)."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)
        try:
            async with pool.connection(timeout=pool_timeout) as conn:
                purged = await purge_idle_buckets(conn, horizon_seconds)
            if purged:
                log.info("purged %d idle rate-limit buckets", purged)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning(
                "rate-limit bucket purge failed (%s); trying again later", type(exc).__name__
            )
