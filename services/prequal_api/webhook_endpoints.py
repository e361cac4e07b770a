"""A client's webhook endpoints: register, list, remove (scope `webhooks:manage`).

Each endpoint belongs to the client that registered it; the client id is part of every query,
so another client's endpoint is indistinguishable from an unknown id. The signing secret is
generated here and returned once, in the creation's answer; it is stored only sealed to the
webhook dispatcher (prequal.webhook_secrets), which alone can open it to sign.

A URL whose host is, or resolves to, an address webhooks may not reach (prequal.egress) is
refused at registration. The name is looked up with a short timeout; a name that does not
resolve now is accepted: the dispatcher checks every delivery again, at the address it connects
to, and that check is the one that counts.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

from psycopg_pool import AsyncConnectionPool

from prequal import egress, webhooks
from prequal.webhook_secrets import seal_secret
from prequal_api.key_refresh import KeyHolder

RESOLVE_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: webhooks.Endpoint
    secret: str


@dataclass(frozen=True)
class WebhookEndpoints:
    pool: AsyncConnectionPool
    pool_timeout: float
    # The keys in use (prequal_api.key_refresh): the dispatcher's key pair rotates too.
    keys: KeyHolder
    allowed_networks: tuple[egress.Network, ...] = ()

    async def refusal(self, url: str) -> str | None:
        """Why webhooks may not go to `url`'s host, or None (also when it does not resolve)."""
        resolve = functools.partial(egress.resolve, url, self.allowed_networks)
        try:
            await asyncio.wait_for(asyncio.to_thread(resolve), RESOLVE_TIMEOUT_SECONDS)
        except egress.RefusedDestinationError as exc:
            return f"the host is or resolves to a {exc.reason} address"
        except (egress.UnresolvedDestinationError, TimeoutError):
            return None
        return None

    async def create(self, client_id: str, url: str) -> CreatedEndpoint:
        endpoint_id = uuid.uuid4()
        secret = webhooks.new_secret()
        sealed = seal_secret(self.keys.current.webhook_sealer, secret, endpoint_id)
        async with self.pool.connection(timeout=self.pool_timeout) as conn:
            cur = await conn.execute(
                webhooks.INSERT_ENDPOINT_SQL, (endpoint_id, client_id, url, sealed)
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
