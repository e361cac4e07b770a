"""The key Secret and its projection for the API: generated, rotated in two phases, never
deleted, and never someone else's.

The key Secret outlives the pipeline whatever its deletionPolicy: the rows it encrypts stay in
PostgreSQL, and without it every stored PAN is unreadable. So it carries no ownerReference (a
Secret an older operator made owned loses that reference here); the annotation
`prequal.dev/pipeline` says whose it is. An existing Secret is changed only when it is the
operator's and this pipeline's (ownership.secret_claim); otherwise the pipeline gets a
condition and the Secret stays byte for byte as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from loan_operator import keyring
from loan_operator.kube import Conflict, Kube, PipelineRef, SecretData, now_iso
from loan_operator.ownership import Refusal, secret_claim
from loan_operator.spec import PipelineSpec
from prequal.sealing import KemName

Problem = tuple[str, str]  # (condition reason, message)


class RotationState(Protocol):
    ref: PipelineRef
    # {phase: Distributing | Active, keyId, since}: where the key rotation stands.
    key_rotation: dict[str, str] | None


class KeySecrets:
    def __init__(
        self,
        kube: Kube,
        changed: Callable[[PipelineRef, str, str], None],
        *,
        key_distribution_seconds: float,
        sealing_kem: KemName,
    ) -> None:
        self.kube = kube
        self.changed = changed
        self.key_distribution_seconds = key_distribution_seconds
        self.sealing_kem = sealing_kem

    def ensure(self, state: RotationState, spec: PipelineSpec) -> Problem | None:
        """Generates, rotates and projects the pipeline's keys; a Problem says why it could not."""
        ref = state.ref
        name = spec.key_secret_name
        wanted = keyring.key_id(spec.key_version)
        secret = self.kube.read_secret(ref.namespace, name)
        if secret is None:
            data = keyring.new_key_data(spec.key_version, self.sealing_kem)
            if self.kube.create_secret(ref.namespace, name, data, ref):
                self.changed(ref, "KeySecretCreated", f"generated Secret {name} with key {wanted}")
                state.key_rotation = {"phase": "Active", "keyId": wanted, "since": now_iso()}
                return self._project_api_keys(ref, name, data)
            secret = self.kube.read_secret(ref.namespace, name)  # lost a race: use theirs
            if secret is None:
                return ("KeySecretInvalid", f"Secret {name} vanished while being created")
        claim = secret_claim(ref.name, "key Secret", name, secret.meta)
        if isinstance(claim, Refusal):
            return (claim.reason, claim.message)
        try:
            rotation = keyring.rotate(
                secret.data,
                spec.key_version,
                activate=self._distributed(state, wanted),
                kem=self.sealing_kem,
            )
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {name}: {exc}")
        problem = self._write(ref, name, secret, rotation, adopt=claim == "adopt")
        if problem:
            return problem
        _record_phase(state, wanted, rotation.active)
        return self._project_api_keys(ref, name, rotation.data)

    def _write(
        self,
        ref: PipelineRef,
        name: str,
        secret: SecretData,
        rotation: keyring.Rotation,
        *,
        adopt: bool,
    ) -> Problem | None:
        data_changed = rotation.data != secret.data
        owner_changed = ref.uid in secret.owned_by  # an older operator's ownerReference
        if not (data_changed or owner_changed or adopt):
            return None
        try:
            self.kube.update_secret(
                ref.namespace,
                name,
                data=rotation.data if data_changed else None,
                owner=ref,
                owned=False,
                claim=adopt,
            )
        except Conflict:
            return ("KeySecretConflict", f"Secret {name} changed while being updated; retrying")
        if rotation.added:
            self.changed(
                ref,
                "KeyRotated",
                f"Secret {name}: appended key {rotation.added}; active once every reader has "
                f"it ({self.key_distribution_seconds:g}s)",
            )
        elif data_changed:
            self.changed(ref, "KeyActivated", f"Secret {name}: active key {rotation.active}")
        if owner_changed:
            self.changed(
                ref, "KeySecretOwnershipChanged", f"Secret {name} now outlives the pipeline"
            )
        if adopt:
            self.changed(ref, "KeySecretAdopted", f"Secret {name} now belongs to {ref.name}")
        return None

    def _project_api_keys(
        self, ref: PipelineRef, name: str, data: Mapping[str, str]
    ) -> Problem | None:
        """The API's Secret: the key Secret without any private key, kept in step with it.

        It follows the key Secret's active key id, which moves only after the distribution
        phase: the API seals with a key only once the credit service can open it.
        """
        api_name = keyring.api_secret_name(name)
        wanted = keyring.api_data(data)
        current = self.kube.read_secret(ref.namespace, api_name)
        if current is None:
            if self.kube.create_secret(ref.namespace, api_name, wanted, ref):
                self.changed(ref, "ApiKeySecretCreated", f"wrote Secret {api_name} (public keys)")
                return None
            current = self.kube.read_secret(ref.namespace, api_name)  # lost a race
            if current is None:
                return ("KeySecretInvalid", f"Secret {api_name} vanished while being created")
        claim = secret_claim(ref.name, "API key Secret", api_name, current.meta)
        if isinstance(claim, Refusal):
            return (claim.reason, claim.message)
        if current.data != wanted or claim == "adopt":
            try:
                self.kube.update_secret(
                    ref.namespace,
                    api_name,
                    data=wanted if current.data != wanted else None,
                    owner=ref,
                    owned=False,
                    claim=claim == "adopt",
                )
            except Conflict:
                return ("KeySecretConflict", f"Secret {api_name} changed while being updated")
            if current.data != wanted:
                self.changed(ref, "ApiKeySecretUpdated", f"Secret {api_name}: public keys updated")
        return None

    def _distributed(self, state: RotationState, wanted: str) -> bool:
        """True once `wanted` has been in the Secret, inactive, for the distribution period."""
        phase = state.key_rotation or {}
        if phase.get("phase") != "Distributing" or phase.get("keyId") != wanted:
            return False
        since = datetime.strptime(phase["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (datetime.now(UTC) - since).total_seconds() >= self.key_distribution_seconds


def _record_phase(state: RotationState, wanted: str, active: str) -> None:
    phase = "Active" if active == wanted else "Distributing"
    current = state.key_rotation or {}
    if current.get("phase") != phase or current.get("keyId") != wanted:
        state.key_rotation = {"phase": phase, "keyId": wanted, "since": now_iso()}


def keys_message(state: RotationState) -> str:
    phase = state.key_rotation or {}
    if phase.get("phase") == "Distributing":
        return f"key {phase.get('keyId')} distributed since {phase.get('since')}, not active yet"
    return f"key {phase.get('keyId')} active"
