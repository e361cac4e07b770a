"""webhook-dispatcher against real PostgreSQL, Kafka and an HTTP receiver on loopback: decided
events reach every endpoint of the owning client, signed per Standard Webhooks; failures are
retried with backoff, then dead (and replayable); a hanging endpoint delays no other."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from prequal import webhooks
from prequalctl.main import main as prequalctl
from tests.polling import wait_until

from .conftest import World
from .dispatch_rig import FAST, Dispatcher, deliveries, register, start_dispatcher, statuses
from .webhook_receiver import HANG, Receiver, serve_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@pytest.fixture
def dispatcher(world: World) -> Iterator[Dispatcher]:
    yield from start_dispatcher(world, FAST)


def test_a_decision_reaches_every_endpoint_of_its_client_signed_and_no_other(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    first = dispatcher.endpoint(receiver, "first")
    second = dispatcher.endpoint(receiver, "second")
    stranger = register(
        world.database_url, "another-client", receiver.url("stranger"), webhooks.new_secret()
    )
    event_id, application_id = dispatcher.decide()

    wait_until(lambda: receiver.of("first") and receiver.of("second"))
    for name, endpoint in (("first", first), ("second", second)):
        [got] = receiver.of(name)
        assert got.verified, "the signature did not verify with the reference library"
        assert got.headers["webhook-id"] == str(event_id)
        body = json.loads(got.body)
        assert body["type"] == "loan.application.decided.v1"
        assert body["data"]["application_id"] == str(application_id)
        assert body["data"]["reason_codes"] == ["CREDIT_SCORE_BELOW_MINIMUM"]
        wait_until(lambda e=endpoint: statuses(world.database_url, e) == ["DELIVERED"])
        assert deliveries(world.database_url, endpoint)[0]["attempts"] == 1
    assert receiver.of("stranger") == []
    assert deliveries(world.database_url, stranger) == []


def test_a_failing_endpoint_is_retried_with_growing_backoff_under_one_webhook_id(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    endpoint = dispatcher.endpoint(receiver, "flaky", [500, 503])
    event_id, _ = dispatcher.decide()

    wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    got = receiver.of("flaky")
    assert len(got) == 3
    assert {r.headers["webhook-id"] for r in got} == {str(event_id)}
    assert all(r.verified for r in got)
    first_gap, second_gap = got[1].at - got[0].at, got[2].at - got[1].at
    assert first_gap >= FAST.backoff_initial
    assert second_gap >= 2 * FAST.backoff_initial
    assert deliveries(world.database_url, endpoint)[0]["attempts"] == 3


def test_a_delivery_is_dead_after_the_stated_attempts_and_a_replay_delivers_it(
    dispatcher: Dispatcher,
    receiver: Receiver,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = dispatcher.endpoint(receiver, "down", [500] * FAST.max_attempts)
    dispatcher.decide()

    wait_until(lambda: statuses(world.database_url, endpoint) == ["DEAD"])
    [dead] = deliveries(world.database_url, endpoint)
    assert dead["attempts"] == FAST.max_attempts
    assert dead["last_error"] == "HTTP 500"
    assert len(receiver.of("down")) == FAST.max_attempts

    # The receiver is fixed (its script is used up: it answers 204 now); replay.
    monkeypatch.setenv("DATABASE_URL", world.database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
    assert prequalctl(["webhooks", "replay", "--delivery", str(dead["id"])]) == 0
    wait_until(lambda: statuses(world.database_url, endpoint) == ["DELIVERED"])
    assert len(receiver.of("down")) == FAST.max_attempts + 1


def test_a_hanging_endpoint_times_out_and_delays_no_other_endpoint(
    dispatcher: Dispatcher, receiver: Receiver, world: World
) -> None:
    hanging = dispatcher.endpoint(receiver, "hanging", [HANG] * 10)
    healthy = dispatcher.endpoint(receiver, "healthy")
    dispatcher.decide()
    dispatcher.decide()

    # While the first attempt at `hanging` is held open, `healthy` gets both decisions, and
    # `hanging` never has more than its one concurrent attempt.
    wait_until(lambda: receiver.of("hanging"))
    wait_until(lambda: statuses(world.database_url, healthy) == ["DELIVERED"] * 2)
    assert len(receiver.of("healthy")) == 2
    assert len(receiver.of("hanging")) == 1
    assert all(d["last_error"] is None for d in deliveries(world.database_url, hanging))

    # The held attempt ends at the timeout and is parked with the reason.
    wait_until(
        lambda: any(
            d["last_error"] == f"timed out after {FAST.timeout:g} s"
            for d in deliveries(world.database_url, hanging)
        )
    )
