"""The webhook dispatcher's key pair rotates in two phases by `spec.encryption.webhookKeyVersion`:
the new pair reaches the dispatcher's Secret first while the API's Secret keeps sealing to the
old one (`status.webhookKeyRotation.phase: Distributing`), then the API's Secret makes it
active (`Active`). At every phase, what the API's Secret seals, the dispatcher's Secret opens;
old pairs stay byte for byte; the data keys' Secret is not touched."""

from __future__ import annotations

import uuid

from devstack.kafka import Kafka
from prequal import sealing, webhooks
from prequal.webhook_secrets import open_secret, seal_secret
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for

API = "retail-pan-keys-api"
DISPATCHER = "retail-pan-keys-webhooks"


def _ring(secret: dict[str, str], name: str) -> dict[str, str]:
    return dict(item.split(":", 1) for item in secret[name].split(","))


def _api_seals_and_dispatcher_opens(pipelines: Pipelines) -> str:
    """Seals a fresh secret as the API would with its Secret, opens it as the dispatcher would
    with its own; the key id it was sealed with."""
    api = pipelines.secret(API) or {}
    dispatcher = pipelines.secret(DISPATCHER) or {}
    sealer = sealing.Sealer(
        sealing.parse_key_list(api["webhook_sealing_public_keys"], "public"),
        api["webhook_sealing_active_key_id"],
    )
    opener = sealing.Opener(
        sealing.parse_key_list(dispatcher["webhook_sealing_private_keys"], "private")
    )
    secret, endpoint_id = webhooks.new_secret(), uuid.uuid4()
    sealed = seal_secret(sealer, secret, endpoint_id)
    assert open_secret(opener, sealed, endpoint_id) == secret
    return sealing.sealed_key_id(sealed)


def test_webhook_key_version_rotates_the_dispatchers_pair_distribute_then_activate(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    pipelines.wait_condition("retail", "SecretsReady", "True")
    before = wait_for(lambda: pipelines.secret(DISPATCHER), 10, "the dispatcher's Secret")
    data_keys = pipelines.secret("retail-pan-keys")
    rotation = pipelines.get("retail")["status"]["webhookKeyRotation"]
    assert (rotation["phase"], rotation["keyId"], rotation["secretName"]) == (
        "Active",
        "v1",
        DISPATCHER,
    )
    assert _api_seals_and_dispatcher_opens(pipelines) == "v1"

    pipelines.patch_spec(
        "retail", {"encryption": {"keySecretName": "retail-pan-keys", "webhookKeyVersion": 2}}
    )
    distributed = wait_for(
        lambda: (
            (s := pipelines.secret(DISPATCHER)) and "v2:" in s["webhook_sealing_private_keys"] and s
        ),
        20,
        "webhook key v2 to be distributed",
    )
    # Distributing: the dispatcher holds v2, the API still seals to v1.
    assert distributed["webhook_sealing_active_key_id"] == "v1"
    for name in ("webhook_sealing_private_keys", "webhook_sealing_public_keys"):
        assert _ring(distributed, name)["v1"] == _ring(before, name)["v1"]
    wait_for(
        lambda: pipelines.get("retail")["status"]["webhookKeyRotation"]["keyId"] == "v2",
        10,
        "the status to name the webhook key rotation",
    )
    # Whichever phase this read meets, the API seals only to a pair the dispatcher holds (the
    # API's Secret is read first, and the dispatcher's is written first).
    assert _api_seals_and_dispatcher_opens(pipelines) in {"v1", "v2"}

    wait_for(
        lambda: (pipelines.secret(API) or {}).get("webhook_sealing_active_key_id") == "v2",
        30,
        "the API to seal to webhook key v2 after the distribution period",
    )
    assert (pipelines.secret(DISPATCHER) or {})["webhook_sealing_active_key_id"] == "v2"
    assert _api_seals_and_dispatcher_opens(pipelines) == "v2"
    api = pipelines.secret(API) or {}
    assert set(_ring(api, "webhook_sealing_public_keys")) == {"v1", "v2"}
    assert "webhook_sealing_private_keys" not in api
    wait_for(
        lambda: pipelines.get("retail")["status"]["webhookKeyRotation"]["phase"] == "Active",
        10,
        "the status to show the webhook key active",
    )
    assert pipelines.events("WebhookKeyRotated")
    assert pipelines.events("WebhookKeyActivated")
    assert pipelines.secret("retail-pan-keys") == data_keys  # the data keys' pair: untouched
    assert _ring(distributed, "webhook_sealing_private_keys")["v2"] not in operator.log()
