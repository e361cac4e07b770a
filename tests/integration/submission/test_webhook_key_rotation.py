"""The webhook dispatcher's key pair rotates in two phases, and deliveries verify throughout.

Before: the API seals to w1, the dispatcher holds w1. Distribute: the dispatcher holds w1 and
w2, the API still seals to w1. Activate: the API seals to w2. Reseal: `prequalctl webhooks
reseal` with the dispatcher's private keys moves every w1 secret to w2. After: a dispatcher
holding w2 alone signs for every endpoint with the secret each was shown once, so w1 retires.
Endpoints are registered with `prequalctl webhooks create` (the API's sealing, on the database)
and delivered by the dispatcher's deliverer against real PostgreSQL and an HTTP receiver that
verifies with the Standard Webhooks library."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from prequal import sealing
from prequalctl.main import main as prequalctl
from tests.integration.decision_path.webhook_receiver import Receiver, serve_receiver
from tests.integration.submission.parked_deliveries import HOOKS_HOST, deliver_parked

PAIRS = {"w1": sealing.generate_key_pair(), "w2": sealing.generate_key_pair()}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


def _public(*key_ids: str) -> str:
    return sealing.format_key_list({k: PAIRS[k].public for k in key_ids})


def _dispatcher(*key_ids: str) -> sealing.Opener:
    return sealing.Opener({k: PAIRS[k].private for k in key_ids})


class Phase:
    """What the API's Secret says at one phase, as the environment `prequalctl` reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("SECRETS_DIR", "/nonexistent")
        monkeypatch.delenv("WEBHOOK_SEALING_PRIVATE_KEYS", raising=False)

    def api(self, public: str, active: str) -> None:
        self.monkeypatch.setenv("WEBHOOK_SEALING_PUBLIC_KEYS", public)
        self.monkeypatch.setenv("WEBHOOK_SEALING_ACTIVE_KEY_ID", active)


def _create(
    receiver: Receiver, name: str, capsys: pytest.CaptureFixture[str]
) -> tuple[uuid.UUID, str]:
    port = receiver.server.server_address[1]
    url = f"http://{HOOKS_HOST}:{port}/hooks/{name}"
    assert prequalctl(["webhooks", "create", "--client", "partner-a", "--url", url]) == 0
    out = capsys.readouterr().out
    endpoint = re.search(r"endpoint ([0-9a-f-]{36}) registered", out)
    secret = re.search(r"(whsec_\S+)", out)
    assert endpoint is not None
    assert secret is not None
    receiver.endpoint(name, secret.group(1))
    return uuid.UUID(endpoint.group(1)), secret.group(1)


def _sealed_with(database_url: str) -> dict[uuid.UUID, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, sealed_secret FROM webhook_endpoints").fetchall()
    return {r[0]: sealing.sealed_key_id(bytes(r[1])) for r in rows}


def test_deliveries_verify_before_during_and_after_a_dispatcher_key_rotation(
    database_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    phase = Phase(monkeypatch, database_url)
    endpoints: dict[str, uuid.UUID] = {}

    # Before: one pair.
    phase.api(_public("w1"), "w1")
    endpoints["before"], _ = _create(receiver, "before", capsys)
    deliver_parked(database_url, _dispatcher("w1"), endpoints.values())

    # Distribute: the dispatcher gets w2 first; the API (its public keys too) still seals to w1.
    phase.api(_public("w1", "w2"), "w1")
    endpoints["distributing"], _ = _create(receiver, "distributing", capsys)
    deliver_parked(database_url, _dispatcher("w1", "w2"), endpoints.values())

    # Activate: the API seals to w2; old secrets still open.
    phase.api(_public("w1", "w2"), "w2")
    endpoints["active"], _ = _create(receiver, "active", capsys)
    assert sorted(_sealed_with(database_url).values()) == ["w1", "w1", "w2"]
    deliver_parked(database_url, _dispatcher("w1", "w2"), endpoints.values())

    # Reseal without the dispatcher's private keys moves nothing and says why.
    assert prequalctl(["webhooks", "reseal"]) == 0
    captured = capsys.readouterr()
    assert "w1: 2 sealed signing secrets (in use: not retirable yet)" in captured.out
    assert "WEBHOOK_SEALING_PRIVATE_KEYS" in captured.err
    # With them it moves both w1 secrets, in batches of one; repeating it moves none.
    monkeypatch.setenv(
        "WEBHOOK_SEALING_PRIVATE_KEYS",
        sealing.format_key_list({k: PAIRS[k].private for k in ("w1", "w2")}),
    )
    assert prequalctl(["webhooks", "reseal", "--batch", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 sealed signing secrets moved to key w2" in out
    assert "w2: 3 sealed signing secrets (active)" in out
    assert set(_sealed_with(database_url).values()) == {"w2"}
    assert prequalctl(["webhooks", "reseal"]) == 0
    assert "0 sealed signing secrets moved" in capsys.readouterr().out

    # After: w1 retired; the dispatcher holds w2 alone and every endpoint still verifies.
    deliver_parked(database_url, _dispatcher("w2"), endpoints.values())
    assert [len(receiver.of(name)) for name in endpoints] == [4, 3, 2]
    assert all(r.verified for name in endpoints for r in receiver.of(name))
