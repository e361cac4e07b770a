"""A client's webhook endpoints: register, list, remove (scope `webhooks:manage`).

Each endpoint belongs to the client that registered it; the client id is part of every query,
so another client's endpoint is indistinguishable from an unknown id. The signing secret is
generated here and returned once, in the creation's answer: it is stored as issued (the
dispatcher needs it to sign) and no later answer selects it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from prequal import webhooks


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: webhooks.Endpoint
    secret: str


@dataclass(frozen=True)
class WebhookEndpoints:
    pool: AsyncConnectionPool
    pool_timeout: float

    async def create(self, client_id: str, url: str) -> CreatedEndpoint:
        secret = webhooks.new_secret()
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            cur = await conn.execute(
                webhooks.INSERT_ENDPOINT_SQL, (uuid.uuid4(), client_id, url, secret)
            )
            row = await cur.fetchone()
        assert row is not None
        return CreatedEndpoint(_endpoint(row), secret)

    async def list(self, client_id: str) -> list[webhooks.Endpoint]:
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            cur = await conn.execute(webhooks.LIST_ENDPOINTS_SQL, (client_id,))
            rows = await cur.fetchall()
        return [_endpoint(row) for row in rows]

    async def delete(self, client_id: str, endpoint_id: uuid.UUID) -> bool:
        """False when the client has no such endpoint."""
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            cur = await conn.execute(webhooks.DELETE_ENDPOINT_SQL, (endpoint_id, client_id))
        return cur.rowcount == 1


def _endpoint(row: tuple[object, ...]) -> webhooks.Endpoint:
    endpoint_id, url, enabled, created_at = row[:4]
    assert isinstance(endpoint_id, uuid.UUID)
    assert isinstance(created_at, datetime)
    return webhooks.Endpoint(endpoint_id, str(url), bool(enabled), created_at)
