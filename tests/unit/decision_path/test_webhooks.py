"""Standard Webhooks signatures checked against the reference library, secrets' shape, and the
dispatcher's backoff schedule."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from prequal import webhooks
from prequalctl.keys import generate_keys
from webhook_dispatcher.delivery import DeliveryPolicy
from webhook_dispatcher.settings import DispatcherSettings


def test_our_signature_is_the_reference_librarys() -> None:
    secret = webhooks.new_secret()
    body = b'{"type":"loan.application.decided.v1","data":{}}'
    ours = webhooks.sign(secret, "msg_1", 1_796_000_000, body)
    reference = Webhook(secret).sign(
        "msg_1", datetime.fromtimestamp(1_796_000_000, UTC), body.decode()
    )
    assert ours == reference


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = webhooks.new_secret(), webhooks.new_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second
    with pytest.raises(ValueError, match="whsec_"):
        webhooks.secret_key("not-a-secret")


def test_backoff_doubles_from_the_initial_wait_up_to_the_maximum() -> None:
    policy = DeliveryPolicy(backoff_initial=2.0, backoff_max=600.0)
    for attempts, base in ((1, 2.0), (2, 4.0), (3, 8.0), (7, 128.0), (12, 600.0)):
        assert base <= policy.backoff(attempts) <= base * 1.1


def test_per_endpoint_concurrency_cannot_exceed_the_workers() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_ENDPOINT_CONCURRENCY"):
        DispatcherSettings(
            database_url="postgresql://u:p@127.0.0.1:5432/db",
            webhook_workers=2,
            webhook_endpoint_concurrency=3,
            webhook_sealing_private_keys=generate_keys("v1")["WEBHOOK_SEALING_PRIVATE_KEYS"],
        )


def test_the_allow_list_is_empty_by_default_and_a_bad_entry_is_refused() -> None:
    keys = generate_keys("v1")["WEBHOOK_SEALING_PRIVATE_KEYS"]
    settings = DispatcherSettings(
        database_url="postgresql://u:p@127.0.0.1:5432/db", webhook_sealing_private_keys=keys
    )
    assert settings.allowed_networks() == ()
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_NETWORKS entry 1"):
        DispatcherSettings(
            database_url="postgresql://u:p@127.0.0.1:5432/db",
            webhook_sealing_private_keys=keys,
            webhook_allowed_networks="loopback",
        )
