"""The charts hand every Kafka client its security settings and its own credentials
(docs/kafka-security.md): the API none, each worker its service's Secret, the operator its own."""

from __future__ import annotations

from typing import Any

from .conftest import CHARTS, by_kind, documents, helm, render

WORKERS = {
    "publisher": "publisher",
    "credit": "credit-service",
    "decision": "decision-service",
    "webhooks": "webhook-dispatcher",
}


def _containers(docs: list[Any]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]
        for d in by_kind(docs, "Deployment")
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_each_worker_authenticates_with_its_own_secret_and_the_api_with_none() -> None:
    containers = _containers(
        documents(render("loan-prequal", "--set", "kafka.credentialSecrets.decision-service=own"))
    )
    for component, principal in WORKERS.items():
        env = _env(containers[f"rel-loan-prequal-{component}"])
        secret = "own" if principal == "decision-service" else f"rel-loan-prequal-kafka-{principal}"
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", component
        assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", component
        assert env["KAFKA_SASL_USERNAME"] == {"secretKeyRef": {"name": secret, "key": "username"}}
        assert env["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": secret, "key": "password"}}
        assert "KAFKA_SSL_CA_LOCATION" not in env, component  # the system trust store
    api = _env(containers["rel-loan-prequal-api"])
    assert not [name for name in api if name.startswith("KAFKA_SASL")]


def test_a_ca_secret_is_mounted_and_named_and_plaintext_sends_no_credentials() -> None:
    docs = documents(render("loan-prequal", "--set", "kafka.caSecret.name=kafka-ca"))
    for deployment in by_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        if name == "rel-loan-prequal-api":
            continue
        pod = deployment["spec"]["template"]["spec"]
        assert _env(pod["containers"][0])["KAFKA_SSL_CA_LOCATION"] == (
            "/etc/prequal/kafka-ca/ca.crt"
        )
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["kafka-ca"] == "/etc/prequal/kafka-ca", name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "kafka-ca", name
    plain = _containers(
        documents(render("loan-prequal", "--set", "kafka.securityProtocol=PLAINTEXT"))
    )
    for component in WORKERS:
        env = _env(plain[f"rel-loan-prequal-{component}"])
        assert env["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
        assert "KAFKA_SASL_PASSWORD" not in env


def test_the_schema_refuses_an_unknown_protocol_or_service() -> None:
    for setting in ("kafka.securityProtocol=SASL", "kafka.credentialSecrets.api=x"):
        refused = helm("template", "rel", str(CHARTS / "loan-prequal"), "--set", setting)
        assert refused.returncode != 0, setting


def test_the_operator_connects_with_its_own_credentials() -> None:
    [deployment] = by_kind(documents(render("loan-operator")), "Deployment")
    env = _env(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "loan-operator-kafka", "key": "password"}
    }
