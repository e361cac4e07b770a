"""The API's registration check (prequal_api.webhook_endpoints): a loopback or private host is
refused by kind, never by echoing it; the allow-list lets it through; a name that does not
resolve is left to the dispatcher's check at delivery."""

from __future__ import annotations

import asyncio
from typing import cast

from psycopg_pool import AsyncConnectionPool

from prequal import egress
from prequal_api.key_refresh import KeyHolder
from prequal_api.webhook_endpoints import WebhookEndpoints


def _endpoints(allowed: str = "") -> WebhookEndpoints:
    return WebhookEndpoints(
        cast(AsyncConnectionPool, None),  # the check never touches the database
        1.0,
        cast(KeyHolder, None),  # nor is anything sealed
        egress.parse_networks(allowed),
    )


def test_a_loopback_or_metadata_host_is_refused_by_kind() -> None:
    guard = _endpoints()
    assert asyncio.run(guard.refusal("http://127.0.0.1:8080/x")) == (
        "the host is or resolves to a loopback address"
    )
    assert asyncio.run(guard.refusal("http://169.254.169.254/latest")) == (
        "the host is or resolves to a link-local address"
    )


def test_the_allow_list_lets_loopback_through_and_nothing_else() -> None:
    guard = _endpoints("127.0.0.0/8")
    assert asyncio.run(guard.refusal("http://127.0.0.1:8080/x")) is None
    assert asyncio.run(guard.refusal("http://10.0.0.1/x")) is not None


def test_a_public_address_or_an_unresolvable_name_is_accepted() -> None:
    guard = _endpoints()
    assert asyncio.run(guard.refusal("https://93.184.215.14/x")) is None
    assert asyncio.run(guard.refusal("https://nowhere.invalid/x")) is None
