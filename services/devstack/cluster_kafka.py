"""The in-cluster dev Kafka's identity (manifests/dev/kafka.yaml), made at install time.

The broker of manifests/dev is SASL_SSL like the local one (docs/kafka-security.md), and none of
its secrets is committed: this makes them as Secrets before manifests/dev is applied. `make
cluster` (devstack.workloads) and the Tiltfile (`python -m devstack.cluster_kafka`) both run it.

- `lending/kafka-tls`: a fresh CA and the broker's certificate for its cluster DNS names (key
  and certificate in one PEM, Kafka's PEM key store), and the CA for its inter-broker client.
- `lending/kafka-users`: a random SCRAM password per broker-made user, the key being the user:
  `admin` (the broker's own identity, a super user) and `loan-operator` (the operator's, a super
  user: it makes every service's user and ACLs). The broker's format step adds them.
- `lending/kafka-jaas`: the broker's own logins as `admin` (JAAS lines: SCRAM on the SASL_SSL
  listener, PLAIN on the controller's, whose `user_admin` entry is also its only account).
- `kafka-ca` (key `ca.crt`) in `lending` and `prequal-system`: the CA alone, for the charts'
  `kafka.caSecret`; `prequal-system/loan-operator-kafka` (`username`, `password`): the operator
  chart's `kafka.credentialsSecret`.

When the broker's two Secrets exist they are kept (a running broker keeps its identity) and the
client copies are made again from them. Secrets are applied server-side, so no password lands
in a `last-applied-configuration` annotation, and no password is printed or written to disk.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from devstack.pki import serving_material
from devstack.tools import tool

NAMESPACE = "lending"
OPERATOR_NAMESPACE = "prequal-system"
SERVICE = "kafka"
# Secret names (not secrets):
TLS_SECRET = "kafka-tls"  # noqa: S105
USERS_SECRET = "kafka-users"  # noqa: S105
JAAS_SECRET = "kafka-jaas"  # noqa: S105
CA_SECRET = "kafka-ca"  # noqa: S105
CA_KEY = "ca.crt"
KEYSTORE_KEY = "server.keystore.pem"
# The operator chart's default kafka.credentialsSecret.
OPERATOR_SECRET = "loan-operator-kafka"  # noqa: S105
ADMIN = "admin"
OPERATOR_USER = "loan-operator"
FIELD_MANAGER = "prequal-dev-kafka"


class Kubectl(Protocol):
    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class Placement:
    """Where the broker (and its Service) and the operator run: manifests/dev's namespaces."""

    namespace: str = NAMESPACE
    operator_namespace: str = OPERATOR_NAMESPACE

    @property
    def dns_names(self) -> tuple[str, ...]:
        """Every name a client may use for the Service; the advertised listener's is the last."""
        ns = self.namespace
        return tuple(
            f"{SERVICE}{s}" for s in ("", f".{ns}", f".{ns}.svc", f".{ns}.svc.cluster.local")
        )


@dataclass(frozen=True)
class DevKafkaIdentity:
    ca_cert: bytes
    keystore: bytes = field(repr=False)
    # SCRAM password by user name (ADMIN, OPERATOR_USER).
    passwords: dict[str, str] = field(repr=False)

    @classmethod
    def generate(cls, where: Placement) -> DevKafkaIdentity:
        made = serving_material(SERVICE, ("localhost", *where.dns_names))
        passwords = {user: secrets.token_urlsafe(32) for user in (ADMIN, OPERATOR_USER)}
        return cls(made.ca_cert, made.keystore, passwords)

    def broker_secrets(self, where: Placement) -> list[dict[str, Any]]:
        ns = where.namespace
        return [
            _secret(ns, TLS_SECRET, {CA_KEY: self.ca_cert, KEYSTORE_KEY: self.keystore}),
            _secret(ns, USERS_SECRET, {u: p.encode() for u, p in self.passwords.items()}),
        ]

    def jaas_secret(self, where: Placement) -> dict[str, Any]:
        password = self.passwords[ADMIN]
        login = f'username="{ADMIN}" password="{password}"'
        return _secret(
            where.namespace,
            JAAS_SECRET,
            {
                "sasl-ssl": (
                    f"org.apache.kafka.common.security.scram.ScramLoginModule required {login};"
                ).encode(),
                "controller": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'{login} user_{ADMIN}="{password}";'
                ).encode(),
            },
        )

    def client_secrets(self, where: Placement) -> list[dict[str, Any]]:
        operator = {"username": OPERATOR_USER, "password": self.passwords[OPERATOR_USER]}
        return [
            _secret(where.namespace, CA_SECRET, {CA_KEY: self.ca_cert}),
            _secret(where.operator_namespace, CA_SECRET, {CA_KEY: self.ca_cert}),
            _secret(
                where.operator_namespace,
                OPERATOR_SECRET,
                {k: v.encode() for k, v in operator.items()},
            ),
        ]

    @classmethod
    def from_broker_secrets(
        cls, tls: dict[str, Any], users: dict[str, Any]
    ) -> DevKafkaIdentity | None:
        """The identity the Secrets already hold, or None when they lack a piece of it."""
        tls_data, users_data = tls.get("data") or {}, users.get("data") or {}
        if not {CA_KEY, KEYSTORE_KEY} <= set(tls_data) or not {ADMIN, OPERATOR_USER} <= set(
            users_data
        ):
            return None
        return cls(
            base64.b64decode(tls_data[CA_KEY]),
            base64.b64decode(tls_data[KEYSTORE_KEY]),
            {user: base64.b64decode(value).decode() for user, value in users_data.items()},
        )


def _secret(namespace: str, name: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": SERVICE, "app.kubernetes.io/part-of": "dev"},
        },
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _list(items: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _read_secret(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    result = kubectl("-n", namespace, "get", "secret", name, "-o", "json", check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise RuntimeError(f"reading Secret {namespace}/{name}: {result.stderr.strip()}")
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def install(kubectl: Kubectl, where: Placement | None = None) -> bool:
    """Every Secret of the module docstring in place; True when a new identity was made."""
    where = where or Placement()
    namespaces = [_namespace(where.namespace), _namespace(where.operator_namespace)]
    kubectl("apply", "-f", "-", stdin=_list(namespaces))
    tls = _read_secret(kubectl, where.namespace, TLS_SECRET)
    users = _read_secret(kubectl, where.namespace, USERS_SECRET)
    identity = DevKafkaIdentity.from_broker_secrets(tls, users) if tls and users else None
    made = identity is None
    if identity is None:
        identity = DevKafkaIdentity.generate(where)
    # The broker's key store and passwords only when new; what derives from them every time.
    wanted = [
        *(identity.broker_secrets(where) if made else []),
        identity.jaas_secret(where),
        *identity.client_secrets(where),
    ]
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        stdin=_list(wanted),
    )
    return made


def kubectl_for(kubeconfig: str | None = None, context: str | None = None) -> Kubectl:
    """A Kubectl of the toolchain's kubectl; errors raise RuntimeError with kubectl's stderr."""
    base = [tool("kubectl")]
    if kubeconfig:
        base.append(f"--kubeconfig={kubeconfig}")
    if context:
        base.append(f"--context={context}")

    def kubectl(
        *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*base, *args], input=stdin, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    return kubectl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.cluster_kafka",
        description="Create the dev Kafka's CA, certificate and SCRAM Secrets (manifests/dev).",
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: kubectl's)")
    options = parser.parse_args(argv)
    try:
        made = install(kubectl_for(options.kubeconfig, options.context))
    except RuntimeError as exc:
        print(f"cluster_kafka: {exc}", file=sys.stderr)
        return 1
    print(
        "dev Kafka: generated a new CA, certificate and SCRAM passwords"
        if made
        else "dev Kafka: kept the existing CA and SCRAM passwords; client copies refreshed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
