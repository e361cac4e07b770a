"""The dispatcher's SSRF guard against real receivers on loopback: with loopback not allowed (the
production default) a delivery to it is refused, recorded dead with the reason and never
retried; allowed (`WEBHOOK_ALLOWED_NETWORKS`, as `make run` sets it) it is delivered. The name is
resolved once and the connection goes to that address, with the name as `Host`."""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from prequal import webhooks
from tests.polling import wait_until

from .conftest import World
from .dispatch_rig import FAST, Dispatcher, deliveries, running, start_dispatcher, statuses
from .webhook_receiver import Receiver, serve_receiver

PRODUCTION = dataclasses.replace(FAST, allowed_networks=())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@pytest.fixture
def guarded(world: World) -> Iterator[Dispatcher]:
    """The dispatcher with no allow-list, as in production."""
    yield from start_dispatcher(world, PRODUCTION)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_without_an_allow_list_a_loopback_endpoint_is_refused_once_and_never_retried(
    guarded: Dispatcher, receiver: Receiver, world: World, host: str
) -> None:
    url = receiver.endpoint("inside", "unused").replace("127.0.0.1", host)
    endpoint = guarded.endpoint_at(url)
    guarded.decide()

    wait_until(lambda: statuses(world.database_url, endpoint) == ["DEAD"])
    [dead] = deliveries(world.database_url, endpoint)
    assert dead["attempts"] == 1, "a refused destination is not retried"
    # `localhost` may answer ::1 or 127.0.0.1 first: both are loopback.
    assert re.match(
        rf"refused: {host} resolves to (127\.0\.0\.1|::1), a loopback", dead["last_error"]
    )
    assert receiver.of("inside") == [], "nothing reached the loopback receiver"


def test_with_loopback_allowed_the_same_endpoint_is_delivered(
    world: World, receiver: Receiver
) -> None:
    secret = webhooks.new_secret()
    url = receiver.endpoint("allowed", secret)
    with running(world, FAST) as dispatcher:  # FAST allows 127.0.0.0/8 and ::1
        endpoint = dispatcher.endpoint_at(url, secret)
        dispatcher.decide()
        wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    [got] = receiver.of("allowed")
    assert got.verified
    assert deliveries(world.database_url, endpoint)[0]["attempts"] == 1


def test_the_name_is_resolved_once_and_the_connection_goes_to_that_address(
    world: World, receiver: Receiver
) -> None:
    """DNS rebinding: `rebind.test` exists only in this resolver, which is asked once per
    attempt; the request reaches the receiver at the answered address, with the name as Host.
    A second lookup (by the HTTP client) would fail: the name does not resolve anywhere else."""
    asked: list[str] = []

    def resolver(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host != "rebind.test":
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    secret = webhooks.new_secret()
    url = receiver.endpoint("rebound", secret).replace("127.0.0.1", "rebind.test")
    with running(world, FAST, resolver) as dispatcher:
        endpoint = dispatcher.endpoint_at(url, secret)
        dispatcher.decide()
        wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    [got] = receiver.of("rebound")
    assert got.verified
    assert _header(got.headers, "host") == url.split("/")[2]
    assert asked == ["rebind.test"]


def test_a_name_that_also_resolves_to_a_private_address_is_refused(
    world: World, receiver: Receiver
) -> None:
    def resolver(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    with running(world, PRODUCTION, resolver) as dispatcher:
        endpoint = dispatcher.endpoint_at("http://metadata.test/latest")
        dispatcher.decide()
        wait_until(lambda: statuses(world.database_url, endpoint) == ["DEAD"])
    [dead] = deliveries(world.database_url, endpoint)
    assert "169.254.169.254, a link-local address" in dead["last_error"]
    assert dead["attempts"] == 1
