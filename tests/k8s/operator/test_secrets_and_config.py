"""Key Secrets generated once and never overwritten, rotation by appending, the database Secret
checked, the services' ConfigMap written, and what is garbage-collected with the pipeline."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest

from devstack.kafka import Kafka
from loan_operator.decision_policy import DEFAULT_DECISION_POLICY, canonical_json, policy_version
from loan_operator.keyring import new_key_data
from tests.k8s.operator.conftest import OperatorProcess, Pipelines, pipeline_body, wait_for


def keyring(secret: dict[str, str], name: str = "sealing_private_keys") -> dict[str, str]:
    return dict(item.split(":", 1) for item in secret[name].split(","))


API_KEYS = {"sealing_public_keys", "sealing_active_key_id"}
WEBHOOK_API_KEYS = {"webhook_sealing_public_keys", "webhook_sealing_active_key_id"}


def test_key_secret_is_generated_with_the_contract_keys_and_a_configmap_is_written(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    pipelines.wait_condition("retail", "SecretsReady", "True")

    keys = wait_for(lambda: pipelines.secret("retail-pan-keys"), 10, "the key Secret")
    assert set(keys) == {"sealing_private_keys", *API_KEYS}
    assert keys["sealing_active_key_id"] == "v1"
    assert len(base64.b64decode(keyring(keys)["v1"])) == 64 + 32  # ML-KEM-768 seed + X25519
    # The blind-index keys: a Secret of their own, for the API alone, named in the status.
    index = wait_for(lambda: pipelines.secret("retail-pan-keys-index"), 10, "the index Secret")
    assert set(index) == {"pan_index_keys", "pan_index_active_key_id"}
    assert index["pan_index_active_key_id"] == "v1"
    assert len(base64.b64decode(keyring(index, "pan_index_keys")["v1"])) == 32
    rotation = pipelines.get("retail")["status"]["indexKeyRotation"]
    assert (rotation["phase"], rotation["keyId"]) == ("Active", "v1")
    assert rotation["secretName"] == "retail-pan-keys-index"
    # The webhook dispatcher's own key pair, in a Secret of its own.
    hooks = wait_for(lambda: pipelines.secret("retail-pan-keys-webhooks"), 10, "webhook keys")
    assert set(hooks) == {"webhook_sealing_private_keys", *WEBHOOK_API_KEYS}
    assert hooks["webhook_sealing_active_key_id"] == "v1"
    # The API's Secret: the public keys of both, no private key.
    api = wait_for(lambda: pipelines.secret("retail-pan-keys-api"), 10, "the API's key Secret")
    assert api == {name: keys[name] for name in API_KEYS} | {
        name: hooks[name] for name in WEBHOOK_API_KEYS
    }
    assert pipelines.config_map("retail-pipeline") == {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "TOPIC_APPLICATIONS_SUBMITTED": f"{pipelines.namespace}.loan_applications_submitted",
        "TOPIC_CREDIT_REPORTS": f"{pipelines.namespace}.credit_reports_generated",
        "TOPIC_APPLICATIONS_DECIDED": f"{pipelines.namespace}.loan_applications_decided",
        "DECISION_MIN_CREDIT_SCORE": "650",
        "DECISION_TERM_MONTHS": "48",
        "DECISION_POLICY": canonical_json(DEFAULT_DECISION_POLICY),
        "DECISION_POLICY_VERSION": policy_version(DEFAULT_DECISION_POLICY),
        "DECISION_CHALLENGER_POLICY": "",
        "DECISION_CHALLENGER_POLICY_VERSION": "",
    }
    # No key material in the operator's log.
    assert keyring(keys)["v1"] not in operator.log()
    assert keyring(index, "pan_index_keys")["v1"] not in operator.log()
    assert hooks["webhook_sealing_private_keys"].split(":")[1] not in operator.log()


def test_existing_key_secret_is_never_overwritten_and_rotation_appends(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    mine = new_key_data(1, kem="x25519")
    pipelines.create_handed_over_secret("retail-pan-keys", mine)
    pipelines.create_db_secret("retail-db")
    body = pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}.")
    pipelines.create(body)
    pipelines.wait_condition("retail", "SecretsReady", "True")
    pipelines.wait_condition("retail", "TopicsReady", "True")  # a second pass has happened
    assert pipelines.secret("retail-pan-keys") == mine
    adopted = pipelines.core.read_namespaced_secret("retail-pan-keys", pipelines.namespace)
    assert adopted.metadata.annotations["prequal.dev/pipeline"] == "retail"

    pipelines.patch_spec(
        "retail", {"encryption": {"keySecretName": "retail-pan-keys", "keyVersion": 2}}
    )
    # Phase one: v2 reaches every reader while v1 still seals.
    distributed = wait_for(
        lambda: (
            (s := pipelines.secret("retail-pan-keys")) and "v2:" in s["sealing_private_keys"] and s
        ),
        20,
        "key v2 to be distributed",
    )
    assert distributed["sealing_active_key_id"] == "v1"
    api = wait_for(
        lambda: (
            (s := pipelines.secret("retail-pan-keys-api"))
            and "v2:" in s["sealing_public_keys"]
            and s
        ),
        20,
        "public key v2 to reach the API's Secret",
    )
    assert api["sealing_active_key_id"] == "v1"  # the API seals with v2 only once activated
    # The status follows the Secrets in the same reconcile pass.
    wait_for(
        lambda: (
            (r := pipelines.get("retail")["status"]["keyRotation"])
            and (r["phase"], r["keyId"]) in {("Distributing", "v2"), ("Active", "v2")}
        ),
        10,
        "the status to name the rotation",
    )
    # Phase two, after OPERATOR_KEY_DISTRIBUTION_SECONDS (4 s here): v2 seals.
    rotated = wait_for(
        lambda: (
            (s := pipelines.secret("retail-pan-keys")) and s["sealing_active_key_id"] == "v2" and s
        ),
        30,
        "key v2 to become active",
    )
    wait_for(
        lambda: pipelines.get("retail")["status"]["keyRotation"]["phase"] == "Active",
        20,
        "the status to say the rotation is done",
    )
    ring = keyring(rotated)
    assert list(ring) == ["v1", "v2"]
    assert ring["v1"] == keyring(mine)["v1"]
    assert len(base64.b64decode(ring["v2"])) == 64 + 32
    wait_for(
        lambda: (
            (pipelines.secret("retail-pan-keys-api") or {}).get("sealing_active_key_id") == "v2"
        ),
        20,
        "the API's Secret to seal with v2",
    )
    assert pipelines.events("KeyRotated")
    assert pipelines.events("KeyActivated")


def test_the_index_key_secret_carries_the_old_key_over_and_rotates_in_two_phases(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    """A key Secret from before the index Secret: its blind-index key becomes the API's v0,
    active until v1 has been distributed; raising indexKeyVersion appends v2, then activates
    it; the key Secret itself is never touched for it."""
    legacy = base64.b64encode(b"L" * 32).decode()
    mine = {**new_key_data(1, kem="x25519"), "pan_blind_index_key": legacy}
    pipelines.create_handed_over_secret("retail-pan-keys", mine)
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    pipelines.wait_condition("retail", "SecretsReady", "True")
    first = wait_for(lambda: pipelines.secret("retail-pan-keys-index"), 10, "the index Secret")
    assert first["pan_blind_index_key"] == legacy
    assert first["pan_index_active_key_id"] == "v0"  # v1 is only being distributed
    assert "pan_blind_index_key" not in (pipelines.secret("retail-pan-keys-api") or {})
    wait_for(
        lambda: (
            (pipelines.secret("retail-pan-keys-index") or {}).get("pan_index_active_key_id") == "v1"
        ),
        30,
        "index key v1 to become active after the distribution period",
    )
    pipelines.patch_spec(
        "retail",
        {"encryption": {"keySecretName": "retail-pan-keys", "indexKeyVersion": 2}},
    )
    distributed = wait_for(
        lambda: (
            (s := pipelines.secret("retail-pan-keys-index")) and "v2:" in s["pan_index_keys"] and s
        ),
        20,
        "index key v2 to be distributed",
    )
    assert distributed["pan_index_active_key_id"] == "v1"
    assert keyring(distributed, "pan_index_keys")["v1"] == keyring(first, "pan_index_keys")["v1"]
    wait_for(
        lambda: pipelines.get("retail")["status"]["indexKeyRotation"]["keyId"] == "v2",
        10,
        "the status to name the index rotation",
    )
    wait_for(
        lambda: (
            (pipelines.secret("retail-pan-keys-index") or {}).get("pan_index_active_key_id") == "v2"
        ),
        30,
        "index key v2 to become active",
    )
    assert pipelines.secret("retail-pan-keys") == mine
    assert pipelines.events("IndexKeyRotated")
    assert pipelines.events("IndexKeyActivated")


def test_missing_database_secret_is_reported_until_it_exists(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    missing = pipelines.wait_condition("retail", "SecretsReady", "False", "DatabaseSecretMissing")
    assert "retail-db" in missing["message"]
    assert pipelines.wait_condition("retail", "Ready", "False")["reason"] == "DatabaseSecretMissing"

    pipelines.create_db_secret("retail-db")
    pipelines.wait_condition("retail", "SecretsReady", "True", timeout=30)
    ready = pipelines.wait_condition("retail", "Ready", "True")
    assert ready["lastTransitionTime"] >= missing["lastTransitionTime"]


def _key_secret_owners(pipelines: Pipelines, name: str) -> list[str]:
    secret = pipelines.core.read_namespaced_secret(name, pipelines.namespace)
    return [ref.kind for ref in (secret.metadata.owner_references or [])]


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_collects_the_configmap_and_never_the_key_secret(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka, policy: str
) -> None:
    pipelines.create_db_secret("retail-db")
    body = pipeline_body(
        "retail", kafka.bootstrap, f"{pipelines.namespace}.", deletionPolicy=policy
    )
    pipelines.create(body)
    pipelines.wait_condition("retail", "SecretsReady", "True")
    keys = pipelines.secret("retail-pan-keys")
    assert keys
    # Nothing for the garbage collector to follow, whatever the policy: the database rows the
    # keys decrypt outlive the pipeline.
    assert _key_secret_owners(pipelines, "retail-pan-keys") == []

    pipelines.delete("retail")
    wait_for(lambda: pipelines.config_map("retail-pipeline") is None, 60, "the ConfigMap's GC")
    assert pipelines.secret("retail-pan-keys") == keys


def test_an_operator_restart_mid_rotation_keeps_the_distribution_period_and_ready_time(
    operator: OperatorProcess, pipelines: Pipelines, kafka: Kafka
) -> None:
    pipelines.create_db_secret("retail-db")
    pipelines.create(pipeline_body("retail", kafka.bootstrap, f"{pipelines.namespace}."))
    ready = pipelines.wait_condition("retail", "Ready", "True")
    pipelines.patch_spec(
        "retail", {"encryption": {"keySecretName": "retail-pan-keys", "keyVersion": 2}}
    )
    distributing = wait_for(
        lambda: (
            (r := (pipelines.get("retail") or {}).get("status", {}).get("keyRotation"))
            and r["phase"] == "Distributing"
            and r
        ),
        20,
        "the rotation to start distributing",
    )
    operator.stop()
    operator.start()
    done = wait_for(
        lambda: (
            (r := (pipelines.get("retail") or {}).get("status", {}).get("keyRotation"))
            and r["phase"] == "Active"
            and r
        ),
        30,
        "the restarted operator to finish the rotation",
    )
    # The distribution period (OPERATOR_KEY_DISTRIBUTION_SECONDS, 4 s) held across the restart.
    began, activated = (
        datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") for t in (distributing["since"], done["since"])
    )
    assert (activated - began).total_seconds() >= 4
    assert pipelines.secret("retail-pan-keys")["sealing_active_key_id"] == "v2"  # type: ignore[index]
    after = pipelines.wait_condition("retail", "Ready", "True")
    assert after["lastTransitionTime"] == ready["lastTransitionTime"]
