"""A pipeline's Kafka principals: one SCRAM user per service, its password in a Secret of its
own, and the ACLs of DESIGN.md's topology (prequal.kafka_acl) for exactly those users.

The user of role `r` in pipeline `p` of namespace `ns` is `ns.p.r`; its Secret `p-kafka-r`
(keys `username`, `password`) is labelled and annotated like the key Secrets, never has an
ownerReference and is never overwritten (ownership.secret_claim). A password is written to
the broker when its Secret is created, or when the broker has no credential for the user (a
new cluster): the Secret stays the one truth. ACL creation is idempotent on the broker.
Deleting a pipeline leaves users and ACLs in place, as it leaves the Secrets.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from loan_operator.kafka_admin import KafkaAdmin, KafkaRequestFailed, KafkaUnreachable
from loan_operator.kube import Kube, PipelineRef
from loan_operator.ownership import Refusal, secret_claim
from loan_operator.spec import PipelineSpec
from prequal.kafka_acl import CONSUMERS, SERVICE_PRINCIPALS, PipelineTopics, pipeline_grants

Problem = tuple[str, str]  # (condition reason, message)
USERNAME_KEY = "username"
PASSWORD_KEY = "password"  # noqa: S105 - the Secret's key name


def credentials_secret_name(pipeline: str, role: str) -> str:
    return f"{pipeline}-kafka-{role}"


def principal_name(ref: PipelineRef, role: str) -> str:
    return f"{ref.namespace}.{ref.name}.{role}"


def pipeline_topics(spec: PipelineSpec) -> PipelineTopics:
    return PipelineTopics.prefixed(spec.kafka.topic_prefix)


class KafkaPrincipals:
    def __init__(
        self, kube: Kube, changed: Callable[[PipelineRef, str, str], None], *, enabled: bool
    ) -> None:
        self.kube = kube
        self.changed = changed
        # Only over SASL do principals mean anything (a PLAINTEXT cluster has no users).
        self.enabled = enabled

    def converge(
        self, ref: PipelineRef, spec: PipelineSpec, admin: KafkaAdmin
    ) -> tuple[bool, str, str]:
        """(ok, reason, message) for the KafkaAccessReady condition."""
        if not self.enabled:
            return (True, "NotManaged", "the operator's Kafka connection is not SASL")
        try:
            problem = self.ensure(ref, spec, admin)
        except KafkaUnreachable as exc:
            problem = ("KafkaUnreachable", f"{spec.kafka.bootstrap_servers}: {exc}")
        except KafkaRequestFailed as exc:
            problem = ("KafkaAccessError", str(exc))
        if problem:
            return (False, *problem)
        return (True, "PrincipalsReconciled", "one SCRAM user per service, with its ACLs")

    def ensure(self, ref: PipelineRef, spec: PipelineSpec, admin: KafkaAdmin) -> Problem | None:
        """Secrets, SCRAM users and ACLs in place; a Problem says why not. Kafka errors
        (KafkaUnreachable, KafkaRequestFailed) are the caller's to report."""
        users: dict[str, str] = {}
        passwords: dict[str, str] = {}
        created: set[str] = set()
        for role in SERVICE_PRINCIPALS:
            name = credentials_secret_name(ref.name, role)
            username = principal_name(ref, role)
            secret = self.kube.read_secret(ref.namespace, name)
            if secret is None:
                data = {USERNAME_KEY: username, PASSWORD_KEY: secrets.token_urlsafe(32)}
                if self.kube.create_secret(ref.namespace, name, data, ref):
                    self.changed(ref, "KafkaCredentialsCreated", f"generated Secret {name}")
                    created.add(username)
                    users[role], passwords[username] = username, data[PASSWORD_KEY]
                    continue
                secret = self.kube.read_secret(ref.namespace, name)  # lost a race: use theirs
                if secret is None:
                    return ("KafkaCredentialsInvalid", f"Secret {name} vanished while created")
            claim = secret_claim(ref.name, "Kafka credentials Secret", name, secret.meta)
            if isinstance(claim, Refusal):
                return (claim.reason, claim.message)
            if secret.data.get(USERNAME_KEY) != username or not secret.data.get(PASSWORD_KEY):
                return (
                    "KafkaCredentialsInvalid",
                    f"Secret {name} must hold {USERNAME_KEY}={username} and a {PASSWORD_KEY}",
                )
            users[role], passwords[username] = username, secret.data[PASSWORD_KEY]
        unknown = set(passwords) - admin.scram_users(passwords)
        stale = created | unknown
        if stale:
            admin.set_scram_passwords({u: passwords[u] for u in sorted(stale)})
            self.changed(
                ref, "KafkaUsersUpdated", f"SCRAM credentials for {', '.join(sorted(stale))}"
            )
        groups = {c.name: c.consumer_group for c in spec.consumers if c.name in CONSUMERS}
        grants = pipeline_grants(pipeline_topics(spec), users, groups)
        admin.grant(grants)
        # Both reach the brokers through the metadata log a moment later: ready is when the
        # broker answering says it has them (the next pass looks again).
        if stale:
            return ("KafkaUsersPending", f"{len(stale)} SCRAM credentials being applied")
        if not admin.granted(grants):
            return ("KafkaAclsPending", "the broker has not applied every ACL yet")
        return None
