"""Long-polling a status (`GET /applications/{id}/status?wait=N`) without polling the database.

Each API process keeps one connection that `LISTEN`s on `application_decided`; the decision
service's transaction sends `NOTIFY application_decided, '<application id>'`, which PostgreSQL
delivers at commit. A waiting request registers its application id here, reads the status once
(already final: answered at once), then sleeps until its id is notified or `wait` seconds pass,
and reads the status once more. So a long poll costs two status reads however long it waits,
and a thousand waiters cost one connection.

If the listening connection is lost, it is opened again with backoff; on reconnecting every
waiter is woken (it re-reads: a decision may have landed meanwhile). While it is down, waiters
answer at their timeout with the status as it is then.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import psycopg
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)

CHANNEL = "application_decided"
MAX_WAIT_SECONDS = 30


class DecisionListener:
    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[object]]],
        registry: CollectorRegistry,
    ) -> None:
        self._connect = connect
        self.waiting = Gauge(
            "prequal_api_status_long_polls",
            "Status requests waiting for a decision (?wait=N) in this process",
            registry=registry,
        )
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="decision-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    @asynccontextmanager
    async def watching(self, application_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        """An event set when the application's decision is committed (registered first, so a
        decision between the caller's read and its wait is not missed)."""
        woken = asyncio.Event()
        self._waiters[application_id].add(woken)
        self.waiting.inc()
        try:
            yield woken
        finally:
            self.waiting.dec()
            waiters = self._waiters.get(application_id)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[application_id]

    def _wake(self, application_id: uuid.UUID) -> None:
        for woken in self._waiters.get(application_id, ()):
            woken.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for woken in waiters:
                woken.set()

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    self._wake_all()
                    async for notify in conn.notifies():
                        with suppress(ValueError):
                            self._wake(uuid.UUID(notify.payload))
            except psycopg.Error as exc:
                log.warning(
                    "decision listener lost its connection (%s); again in %.1f s",
                    type(exc).__name__,
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
