"""A pipeline's Kafka principals: one SCRAM user per service, its password in a Secret of its
own, and the ACLs of DESIGN.md's topology (prequal.kafka_acl) for exactly those users.

The user of role `r` in pipeline `p` of namespace `ns` is `ns.p.r`; its Secret `p-kafka-r`
(keys `username`, `password`) is labelled and annotated like the key Secrets and is never
overwritten (ownership.secret_claim). A password is written to the broker when its Secret is
created, or when the broker has no credential for the user (a new cluster): the Secret stays
the one truth. ACL creation is idempotent on the broker.

Deleting a pipeline removes its users and every ACL naming them (`remove`: best effort when the
operator sees the deletion, deletion.py, else the orphan sweep, orphan_sweep.py), and the
credentials Secrets follow through their ownerReference to the LoanPipeline (the garbage
collector; the operator needs no `delete` on Secrets). No other live
pipeline can share a user: namespaces have no dots and roles have none, so `ns.p.r` names one
pipeline (namespace, name) and one role; a pipeline of the same name is created only once the
old one is gone. Key Secrets never get an ownerReference here: only a Secret that holds
exactly this pipeline's `username` and a `password` is treated as a credentials Secret.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable

from loan_operator.kafka_admin import KafkaAdmin
from loan_operator.kafka_errors import KafkaRequestFailed, KafkaUnreachable
from loan_operator.kube import Conflict, Kube, NotFound, PipelineRef, SecretData
from loan_operator.ownership import Refusal, secret_claim
from loan_operator.spec import PipelineSpec
from prequal.kafka_acl import CONSUMERS, SERVICE_PRINCIPALS, PipelineTopics, pipeline_grants

Problem = tuple[str, str]  # (condition reason, message)
USERNAME_KEY = "username"
PASSWORD_KEY = "password"  # noqa: S105 - the Secret's key name
# The finalizer an earlier version held on every LoanPipeline until its users were removed;
# kopf, configured with this name and no handler needing a finalizer, strips it (handlers.py).
LEGACY_FINALIZER = "prequal.dev/kafka-access"


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
            self._own(ref, name, secret)
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

    def users(self, ref: PipelineRef) -> list[str]:
        return [principal_name(ref, role) for role in SERVICE_PRINCIPALS]

    def remove(self, ref: PipelineRef, admin: KafkaAdmin) -> tuple[list[str], int]:
        """Deletes the pipeline's SCRAM credentials, then every ACL naming its users (so a user
        of the same name made later starts with none); (users that had one, ACLs deleted).
        Kafka errors are the caller's. Also hands this pipeline's credentials Secrets to the
        garbage collector (an ownerReference), for those made before they carried one."""
        users = self.users(ref)
        deleted = admin.delete_scram_users(users)
        revoked = admin.revoke(users)
        for role in SERVICE_PRINCIPALS:
            name = credentials_secret_name(ref.name, role)
            secret = self.kube.read_secret(ref.namespace, name)
            if secret is not None:
                self._own(ref, name, secret)
        return deleted, revoked

    def _own(self, ref: PipelineRef, name: str, secret: SecretData) -> None:
        """An ownerReference to the pipeline on its credentials Secret, so the garbage collector
        deletes it with the pipeline: only a Secret of this pipeline's (claimed) that holds this
        role's user name, never a key Secret or another pipeline's."""
        if (
            ref.uid in secret.owned_by
            or secret_claim(ref.name, "Kafka credentials Secret", name, secret.meta) != "ours"
        ):
            return
        username = secret.data.get(USERNAME_KEY)
        if set(secret.data) != {USERNAME_KEY, PASSWORD_KEY} or username not in self.users(ref):
            return
        with contextlib.suppress(Conflict, NotFound):  # changed meanwhile: the next pass
            self.kube.update_secret(ref.namespace, name, owner=ref, owned=True)
