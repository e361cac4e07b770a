"""The broker side of a pipeline's Kafka access: SCRAM credentials and ACLs (confluent_kafka).

A mixin of `KafkaAdmin` (which owns the AdminClient and the timeout), kept apart because it is
a concept of its own: what kafka_principals creates for a pipeline and removes with it.
Every call is bounded by the timeout and raises only kafka_errors' two exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from loan_operator.kafka_errors import error_code, result, translate
from prequal.kafka_acl import Grant


class KafkaAccessAdmin:
    _client: AdminClient
    timeout: float

    def scram_users(self, names: Iterable[str]) -> set[str]:
        """Which of these users have a SCRAM-SHA-512 credential."""
        wanted = list(names)
        try:
            futures = self._client.describe_user_scram_credentials(
                wanted, request_timeout=self.timeout
            )
        except Exception as exc:
            raise translate(exc) from exc
        assert isinstance(futures, dict)  # one future per user when users are named
        present = set()
        for name, future in futures.items():
            try:
                description = future.result(self.timeout)
            except KafkaException as exc:
                if error_code(exc) == KafkaError.RESOURCE_NOT_FOUND:
                    continue
                raise translate(exc) from exc
            except Exception as exc:
                raise translate(exc) from exc
            if any(
                info.mechanism == ScramMechanism.SCRAM_SHA_512
                for info in description.scram_credential_infos
            ):
                present.add(name)
        return present

    def all_scram_users(self) -> set[str]:
        """Every user the cluster holds a SCRAM-SHA-512 credential for (the orphan sweep)."""
        try:
            future = self._client.describe_user_scram_credentials(
                None, request_timeout=self.timeout
            )
        except Exception as exc:
            raise translate(exc) from exc
        assert not isinstance(future, dict)  # one future for all users when none is named
        descriptions = result(future, self.timeout)
        return {
            name
            for name, description in descriptions.items()
            if any(
                info.mechanism == ScramMechanism.SCRAM_SHA_512
                for info in description.scram_credential_infos
            )
        }

    def set_scram_passwords(self, passwords: Mapping[str, str]) -> None:
        """Creates or replaces each user's SCRAM-SHA-512 credential (random salt)."""
        if not passwords:
            return
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        upserts = [
            UserScramCredentialUpsertion(user, info, password.encode())
            for user, password in passwords.items()
        ]
        futures = self._client.alter_user_scram_credentials(
            upserts,  # type: ignore[arg-type]
            request_timeout=self.timeout,
        )
        for future in futures.values():
            result(future, self.timeout)

    def grant(self, grants: Iterable[Grant]) -> None:
        """Creates these ALLOW ACLs; one that exists already is left as it is (no new record)."""
        bindings = [
            AclBinding(
                ResourceType[g.resource],
                g.name,
                ResourcePatternType.LITERAL,
                f"User:{g.principal}",
                "*",
                AclOperation[g.operation],
                AclPermissionType.ALLOW,
            )
            for g in grants
        ]
        if not bindings:
            return
        futures = self._client.create_acls(bindings, request_timeout=self.timeout)
        for future in futures.values():
            result(future, self.timeout)

    def granted(self, grants: Iterable[Grant]) -> bool:
        """Whether the broker answering enforces every one of these grants already (a created
        ACL reaches the brokers' authorizers through the metadata log, a moment later)."""
        wanted = {(g.principal, g.resource, g.name, g.operation) for g in grants}
        # None: any name, principal and host (the stubs type them str).
        query = AclBindingFilter(
            ResourceType.ANY,
            None,  # type: ignore[arg-type]
            ResourcePatternType.ANY,
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            AclOperation.ANY,
            AclPermissionType.ALLOW,
        )
        future = self._client.describe_acls(query, request_timeout=self.timeout)
        have = {
            (b.principal.removeprefix("User:"), b.restype.name, b.name, b.operation.name)
            for b in result(future, self.timeout)
        }
        return wanted <= have

    def delete_scram_users(self, names: Iterable[str]) -> list[str]:
        """Removes each user's SCRAM-SHA-512 credential; returns the users that had one (a user
        without one is already as wanted). Existing connections stay until they re-authenticate;
        no new one can log in."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        deletions = [UserScramCredentialDeletion(u, ScramMechanism.SCRAM_SHA_512) for u in wanted]
        try:
            futures = self._client.alter_user_scram_credentials(
                deletions,  # type: ignore[arg-type]
                request_timeout=self.timeout,
            )
        except Exception as exc:
            raise translate(exc) from exc
        deleted = []
        for user, future in futures.items():
            try:
                future.result(self.timeout)
            except KafkaException as exc:
                if error_code(exc) == KafkaError.RESOURCE_NOT_FOUND:
                    continue
                raise translate(exc) from exc
            except Exception as exc:
                raise translate(exc) from exc
            deleted.append(user)
        return sorted(deleted)

    def revoke(self, principals: Iterable[str]) -> int:
        """Deletes every ACL that names one of these users (ALLOW or DENY, any resource, any
        host); returns how many the broker deleted."""
        filters = [_principal_filter(p) for p in sorted(set(principals))]
        if not filters:
            return 0
        futures = self._client.delete_acls(filters, request_timeout=self.timeout)
        return sum(len(result(f, self.timeout)) for f in futures.values())


def _principal_filter(principal: str) -> AclBindingFilter:
    # None: any resource name and any host (the stubs type them str).
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
