"""The in-cluster dev Kafka's identity (devstack.cluster_kafka), made against a real API server:
every Secret manifests/dev and the charts name, a certificate for the Service's names signed by
the CA the clients get, and a second install that keeps what the broker already runs with."""

from __future__ import annotations

import base64
import json
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devstack import cluster_kafka
from devstack.cluster_kafka import Placement
from devstack.kube import ControlPlane


def _placement() -> Placement:
    suffix = uuid.uuid4().hex[:8]
    return Placement(f"dev-kafka-{suffix}", f"dev-operator-{suffix}")


def _secret(kubectl: cluster_kafka.Kubectl, namespace: str, name: str) -> dict[str, bytes]:
    found = json.loads(kubectl("-n", namespace, "get", "secret", name, "-o", "json").stdout)
    annotations = found["metadata"].get("annotations") or {}
    # Applied server-side: no copy of the data in a last-applied-configuration annotation.
    copied = "kubectl.kubernetes.io/last-applied-configuration" in annotations
    assert not copied, f"{name} carries its data in an annotation"
    return {key: base64.b64decode(value) for key, value in found["data"].items()}


def test_install_makes_the_brokers_and_the_clients_secrets(control_plane: ControlPlane) -> None:
    kubectl = cluster_kafka.kubectl_for(str(control_plane.kubeconfig))
    where = _placement()
    assert cluster_kafka.install(kubectl, where) is True

    tls = _secret(kubectl, where.namespace, cluster_kafka.TLS_SECRET)
    ca = x509.load_pem_x509_certificate(tls[cluster_kafka.CA_KEY])
    keystore = tls[cluster_kafka.KEYSTORE_KEY]
    server = x509.load_pem_x509_certificate(keystore)  # the certificate after the key
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"kafka.{where.namespace}.svc.cluster.local" in names.get_values_for_type(x509.DNSName)
    key = serialization.load_pem_private_key(keystore, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == server.public_key()
    assert keystore.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8: Kafka's PEM store

    users = _secret(kubectl, where.namespace, cluster_kafka.USERS_SECRET)
    assert set(users) == {cluster_kafka.ADMIN, cluster_kafka.OPERATOR_USER}
    # Compared into bools throughout, so that a failure never prints a password.
    distinct = len({*users.values()}) == 2
    assert distinct, "admin and loan-operator must have passwords of their own"
    assert all(len(p) >= 32 for p in users.values())
    jaas = _secret(kubectl, where.namespace, cluster_kafka.JAAS_SECRET)
    admin_login = b'username="admin" password="' + users["admin"] + b'"'
    scram, controller = jaas["sasl-ssl"], jaas["controller"]
    assert scram.startswith(b"org.apache.kafka.common.security.scram.ScramLoginModule required")
    assert controller.startswith(b"org.apache.kafka.common.security.plain.PlainLoginModule")
    logs_in = admin_login in scram and admin_login in controller
    assert logs_in, "the broker's logins must be admin's with its password"
    serves = (b'user_admin="' + users["admin"] + b'";') in controller
    assert serves, "the controller listener's one PLAIN account must be admin's"

    for namespace in (where.namespace, where.operator_namespace):
        copy = _secret(kubectl, namespace, cluster_kafka.CA_SECRET)
        assert copy == {cluster_kafka.CA_KEY: tls[cluster_kafka.CA_KEY]}
    operator = _secret(kubectl, where.operator_namespace, cluster_kafka.OPERATOR_SECRET)
    assert operator["username"] == b"loan-operator"
    same = operator["password"] == users["loan-operator"]
    assert same, "the operator's Secret must hold the broker's loan-operator password"


def test_a_second_install_keeps_the_identity_and_restores_the_client_copies(
    control_plane: ControlPlane,
) -> None:
    kubectl = cluster_kafka.kubectl_for(str(control_plane.kubeconfig))
    where = _placement()
    cluster_kafka.install(kubectl, where)
    before = {
        name: _secret(kubectl, where.namespace, name)
        for name in (cluster_kafka.TLS_SECRET, cluster_kafka.USERS_SECRET)
    }
    for name in (cluster_kafka.CA_SECRET, cluster_kafka.OPERATOR_SECRET):
        kubectl("-n", where.operator_namespace, "delete", "secret", name)

    assert cluster_kafka.install(kubectl, where) is False
    for name, data in before.items():
        kept = _secret(kubectl, where.namespace, name) == data
        assert kept, f"{name} changed: a running broker would no longer match its clients"
    ca = _secret(kubectl, where.operator_namespace, cluster_kafka.CA_SECRET)
    assert ca[cluster_kafka.CA_KEY] == before[cluster_kafka.TLS_SECRET][cluster_kafka.CA_KEY]
    operator = _secret(kubectl, where.operator_namespace, cluster_kafka.OPERATOR_SECRET)
    same = operator["password"] == before[cluster_kafka.USERS_SECRET]["loan-operator"]
    assert same, "the restored operator Secret must hold the broker's loan-operator password"
