"""The in-cluster dev Kafka is SASL_SSL like production (docs/kafka-security.md): its identity is
generated at install time, the operator manages each service's SCRAM user and ACLs, and the
broker refuses a client without credentials, with a wrong password, or acting as another
service. The clients run inside the publisher's pod (its NetworkPolicy lets it reach Kafka, and
it has the CA and its own principal), with the platform image's own librdkafka.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devstack import cluster_kafka
from devstack.workloads import NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_RELEASE, RELEASE
from prequal.dlq import dlq_topic
from prequal.kafka_acl import SERVICE_PRINCIPALS
from tests.cluster.conftest import RunningCluster
from tests.polling import wait_until

# Run with `python - <json>` in the publisher's container: each attempt as a JSON result. No
# credential is passed in: the pod's own are in its environment, a wrong one is made here.
_ATTEMPTS = r"""
import json, os, secrets, sys, time
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

want = json.loads(sys.argv[1])
env = os.environ
tls = {
    "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
    "security.protocol": "ssl",
    "ssl.ca.location": env["KAFKA_SSL_CA_LOCATION"],
}
own = {
    **tls,
    "security.protocol": "sasl_ssl",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": env["KAFKA_SASL_USERNAME"],
    "sasl.password": env["KAFKA_SASL_PASSWORD"],
}


def metadata(config, timeout=6):
    errors = []
    admin = AdminClient({**config, "error_cb": lambda e: errors.append(e.name())})
    try:
        return {"ok": True, "topics": sorted(admin.list_topics(timeout=timeout).topics)}
    except KafkaException as exc:
        admin.poll(1)  # serves error_cb: why the broker connection failed
        return {"ok": False, "error": exc.args[0].name(), "errors": sorted(set(errors))}


def consume(topic, group):
    errors = []
    consumer = Consumer({
        **own, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "latest",
        "error_cb": lambda e: errors.append(e.name()),
    })
    consumer.subscribe([topic])
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                error = message.error()
                return {"ok": error is None, "error": error.name() if error else None}
            if errors:
                return {"ok": False, "error": errors[0]}
        return {"ok": None, "error": "no answer within 20 s"}
    finally:
        consumer.close()


def produce(topic):
    reports = []
    producer = Producer({**own, "message.timeout.ms": 20000})
    producer.produce(
        topic, b"must be refused",
        on_delivery=lambda err, msg: reports.append(err.name() if err else None),
    )
    producer.flush(25)
    return {"ok": reports == [None], "error": reports[0] if reports else "no delivery report"}


print(json.dumps({
    "own principal": metadata(own, timeout=20),
    "plaintext": metadata({**tls, "security.protocol": "plaintext"}),
    "TLS without SASL": metadata(tls),
    "wrong password": metadata({**own, "sasl.password": secrets.token_urlsafe(32)}),
    "unknown user": metadata({**own, "sasl.username": "nobody"}),
    "read another service's topic": consume(want["topic"], want["group"]),
    "write another service's DLQ": produce(want["dlq"]),
}))
"""


def _condition(cluster: RunningCluster, kind: str) -> dict[str, Any] | None:
    pipeline = cluster.json("-n", NAMESPACE, "get", "loanpipeline", RELEASE)
    for condition in pipeline.get("status", {}).get("conditions", []):
        if condition["type"] == kind:
            found: dict[str, Any] = condition
            return found
    return None


def _secret_values(cluster: RunningCluster, namespace: str, name: str) -> dict[str, str]:
    data = cluster.json("-n", namespace, "get", "secret", name)["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


@pytest.fixture(scope="module")
def kafka_access(cluster: RunningCluster) -> dict[str, Any]:
    """The pipeline's KafkaAccessReady condition once the operator has converged it."""

    def ready() -> dict[str, Any] | None:
        condition = _condition(cluster, "KafkaAccessReady")
        return condition if condition and condition["status"] == "True" else None

    return wait_until(ready, timeout=120, interval=2, what="KafkaAccessReady=True")


def test_the_operator_manages_the_pipelines_kafka_principals(
    cluster: RunningCluster, kafka_access: dict[str, Any]
) -> None:
    # NotManaged would mean the operator's own connection is not SASL (the PLAINTEXT dev Kafka).
    assert kafka_access["reason"] == "PrincipalsReconciled", kafka_access
    for role in SERVICE_PRINCIPALS:
        secret = _secret_values(cluster, NAMESPACE, f"{RELEASE}-kafka-{role}")
        assert secret["username"] == f"{NAMESPACE}.{RELEASE}.{role}"
    # The publisher and the consumers run as their own principals, with the generated CA.
    for deployment in ("publisher", "credit", "decision", "webhooks"):
        spec = cluster.json("-n", NAMESPACE, "get", "deployment", f"{RELEASE}-{deployment}")
        [container] = spec["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
        assert ref.startswith(f"{RELEASE}-kafka-"), deployment
        assert env["KAFKA_SSL_CA_LOCATION"]["value"].endswith("/ca.crt")


def test_the_broker_refuses_who_has_no_credentials_or_acts_as_another_service(
    cluster: RunningCluster, kafka_access: dict[str, Any]
) -> None:
    pipeline = cluster.json("-n", NAMESPACE, "get", "loanpipeline", RELEASE)
    [credit] = [c for c in pipeline["spec"]["consumers"] if c["name"] == "credit-service"]
    want = {"topic": credit["topic"], "group": credit["consumerGroup"]}
    want["dlq"] = dlq_topic(credit["topic"])
    done = cluster.cluster.kubectl(
        "-n",
        NAMESPACE,
        "exec",
        "-i",
        f"deployment/{RELEASE}-publisher",
        "--",
        "python",
        "-",
        json.dumps(want),
        stdin=_ATTEMPTS,
    )
    results = json.loads(done.stdout.strip().splitlines()[-1])
    # The publisher's own principal gets in (so what follows is refused for who it is).
    assert results["own principal"]["ok"], results
    assert credit["topic"] in results["own principal"]["topics"]
    for no_identity in ("plaintext", "TLS without SASL"):
        assert results[no_identity]["ok"] is False, results
    for bad_login in ("wrong password", "unknown user"):
        assert results[bad_login]["ok"] is False, results
        assert "_AUTHENTICATION" in results[bad_login]["errors"], results
    read = results["read another service's topic"]
    assert read["ok"] is False, results
    assert read["error"] in {"GROUP_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED"}, results
    written = results["write another service's DLQ"]
    assert written == {"ok": False, "error": "TOPIC_AUTHORIZATION_FAILED"}, results


def test_the_dev_kafkas_identity_is_generated_and_stays_out_of_the_logs(
    cluster: RunningCluster, kafka_access: dict[str, Any]
) -> None:
    users = _secret_values(cluster, NAMESPACE, cluster_kafka.USERS_SECRET)
    assert set(users) == {cluster_kafka.ADMIN, cluster_kafka.OPERATOR_USER}
    operator = _secret_values(cluster, OPERATOR_NAMESPACE, cluster_kafka.OPERATOR_SECRET)
    assert operator["username"] == cluster_kafka.OPERATOR_USER
    # Compared into a bool, so a failure never prints a password.
    same = operator["password"] == users[cluster_kafka.OPERATOR_USER]
    assert same, "the operator's Secret does not hold the broker's loan-operator password"
    tls = _secret_values(cluster, NAMESPACE, cluster_kafka.TLS_SECRET)
    for namespace in (NAMESPACE, OPERATOR_NAMESPACE):
        ca = _secret_values(cluster, namespace, cluster_kafka.CA_SECRET)
        assert ca == {cluster_kafka.CA_KEY: tls[cluster_kafka.CA_KEY]}
    passwords = set(users.values())
    for role in SERVICE_PRINCIPALS:
        passwords.add(_secret_values(cluster, NAMESPACE, f"{RELEASE}-kafka-{role}")["password"])
    logs = {
        "kafka": cluster.kubectl("-n", NAMESPACE, "logs", "statefulset/kafka", "--all-containers"),
        "operator": cluster.kubectl(
            "-n", OPERATOR_NAMESPACE, "logs", f"deployment/{OPERATOR_RELEASE}"
        ),
        "publisher": cluster.kubectl("-n", NAMESPACE, "logs", f"deployment/{RELEASE}-publisher"),
    }
    for name, text in logs.items():
        leaked = sum(password in text for password in passwords)
        # Only a count in the message: never the password itself.
        assert leaked == 0, f"{leaked} Kafka password(s) in the {name} log"
