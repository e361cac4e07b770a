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

from loan_operator import index_keys, keyring
from loan_operator.kube import Conflict, Kube, PipelineRef, SecretData, now_iso
from loan_operator.ownership import Refusal, secret_claim
from loan_operator.spec import PipelineSpec
from prequal.sealing import KemName

Problem = tuple[str, str]  # (condition reason, message)


class RotationState(Protocol):
    ref: PipelineRef
    # {phase: Distributing | Active, keyId, since}: where the key rotation stands.
    key_rotation: dict[str, str] | None
    # The same for the blind-index keys, with the index Secret's name (secretName).
    index_key_rotation: dict[str, str] | None
    # The same for the webhook dispatcher's key pair, with its Secret's name.
    webhook_key_rotation: dict[str, str] | None


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
                return self._project_api_keys(state, spec, data)
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
                activate=self._distributed(state.key_rotation, wanted),
                kem=self.sealing_kem,
            )
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {name}: {exc}")
        problem = self._write(ref, name, secret, rotation, adopt=claim == "adopt")
        if problem:
            return problem
        state.key_rotation = _phase(state.key_rotation, wanted, rotation.active)
        return self._project_api_keys(state, spec, rotation.data)

    def ensure_index(self, state: RotationState, spec: PipelineSpec) -> Problem | None:
        """The index-key Secret (loan_operator.index_keys), rotated in the same two phases and
        claimed like the key Secret: never someone else's, never garbage-collected."""
        ref = state.ref
        name = index_keys.secret_name(spec.key_secret_name)
        wanted = keyring.key_id(spec.index_key_version)
        key_secret = self.kube.read_secret(ref.namespace, spec.key_secret_name)
        legacy = key_secret.data.get(keyring.BLIND_INDEX_KEY) if key_secret else None
        current = self.kube.read_secret(ref.namespace, name)
        claim = None
        if current is not None:
            claim = secret_claim(ref.name, "index key Secret", name, current.meta)
            if isinstance(claim, Refusal):
                return (claim.reason, claim.message)
        try:
            rotation = index_keys.rotate(
                current.data if current else {},
                spec.index_key_version,
                activate=self._distributed(state.index_key_rotation, wanted),
                legacy_key=legacy,
            )
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {name}: {exc}")
        if current is None:
            if not self.kube.create_secret(ref.namespace, name, rotation.data, ref):
                return ("KeySecretConflict", f"Secret {name} appeared while being created")
            self.changed(ref, "IndexKeySecretCreated", f"generated Secret {name} with {wanted}")
        elif rotation.data != current.data or claim == "adopt":
            try:
                self.kube.update_secret(
                    ref.namespace,
                    name,
                    data=rotation.data if rotation.data != current.data else None,
                    owner=ref,
                    owned=False,
                    claim=claim == "adopt",
                )
            except Conflict:
                return ("KeySecretConflict", f"Secret {name} changed while being updated")
            if rotation.added:
                self.changed(ref, "IndexKeyRotated", f"Secret {name}: appended key {wanted}")
            elif rotation.data != current.data:
                self.changed(ref, "IndexKeyActivated", f"Secret {name}: active {wanted}")
        phase = _phase(state.index_key_rotation, wanted, rotation.active)
        state.index_key_rotation = {**phase, "secretName": name}
        return None

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
        self, state: RotationState, spec: PipelineSpec, data: Mapping[str, str]
    ) -> Problem | None:
        """The API's Secret: the key Secret without any private key, kept in step with it.

        It follows the key Secret's active key id, which moves only after the distribution
        phase: the API seals with a key only once the credit service can open it.
        """
        ref = state.ref
        api_name = keyring.api_secret_name(spec.key_secret_name)
        webhook_keys = self._ensure_webhook_keys(state, spec)
        if isinstance(webhook_keys, tuple):
            return webhook_keys
        wanted = keyring.api_data(data) | webhook_keys
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

    def _ensure_webhook_keys(
        self, state: RotationState, spec: PipelineSpec
    ) -> dict[str, str] | Problem:
        """The dispatcher's key Secret, generated when absent, rotated in the two phases of
        `webhookKeyVersion` (never a key dropped, never another pipeline's); its public part
        for the API's Secret, or why there is none.

        The API's Secret follows this Secret's active id, which moves only after the
        distribution period: the API seals a secret to a pair only once the dispatcher has it.
        """
        ref = state.ref
        name = keyring.webhook_secret_name(spec.key_secret_name)
        wanted = keyring.key_id(spec.webhook_key_version)
        secret = self.kube.read_secret(ref.namespace, name)
        if secret is None:
            data = keyring.new_webhook_key_data(self.sealing_kem, spec.webhook_key_version)
            if self.kube.create_secret(ref.namespace, name, data, ref):
                self.changed(ref, "WebhookKeySecretCreated", f"generated Secret {name} ({wanted})")
                state.webhook_key_rotation = {
                    "phase": "Active",
                    "keyId": wanted,
                    "since": now_iso(),
                    "secretName": name,
                }
                return keyring.webhook_api_data(data)
            secret = self.kube.read_secret(ref.namespace, name)  # lost a race
            if secret is None:
                return ("KeySecretInvalid", f"Secret {name} vanished while being created")
        claim = secret_claim(ref.name, "webhook key Secret", name, secret.meta)
        if isinstance(claim, Refusal):
            return (claim.reason, claim.message)
        try:
            rotation = keyring.rotate(
                secret.data,
                spec.webhook_key_version,
                activate=self._distributed(state.webhook_key_rotation, wanted),
                kem=self.sealing_kem,
                names=keyring.WEBHOOK_NAMES,
            )
            projected = keyring.webhook_api_data(rotation.data)
        except keyring.KeyringError as exc:
            return ("KeySecretInvalid", f"Secret {name}: {exc}")
        changed = rotation.data != secret.data
        if changed or claim == "adopt":
            try:
                self.kube.update_secret(
                    ref.namespace,
                    name,
                    data=rotation.data if changed else None,
                    owner=ref,
                    owned=False,
                    claim=claim == "adopt",
                )
            except Conflict:
                return ("KeySecretConflict", f"Secret {name} changed while being updated")
            if rotation.added:
                self.changed(
                    ref,
                    "WebhookKeyRotated",
                    f"Secret {name}: appended key {rotation.added}; active once the dispatcher "
                    f"has it ({self.key_distribution_seconds:g}s)",
                )
            elif changed:
                self.changed(ref, "WebhookKeyActivated", f"Secret {name}: active {rotation.active}")
        phase = _phase(state.webhook_key_rotation, wanted, rotation.active)
        state.webhook_key_rotation = {**phase, "secretName": name}
        return projected

    def _distributed(self, rotation: Mapping[str, str] | None, wanted: str) -> bool:
        """True once `wanted` has been in the Secret, inactive, for the distribution period."""
        phase = rotation or {}
        if phase.get("phase") != "Distributing" or phase.get("keyId") != wanted:
            return False
        since = datetime.strptime(phase["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return (datetime.now(UTC) - since).total_seconds() >= self.key_distribution_seconds


def _phase(current: Mapping[str, str] | None, wanted: str, active: str) -> dict[str, str]:
    """{phase, keyId, since}: `since` moves only when the phase or the wanted key does."""
    phase = "Active" if active == wanted else "Distributing"
    if current and current.get("phase") == phase and current.get("keyId") == wanted:
        return dict(current)
    return {"phase": phase, "keyId": wanted, "since": now_iso()}


def keys_message(state: RotationState) -> str:
    parts = []
    for what, phase in (
        ("key", state.key_rotation),
        ("index key", state.index_key_rotation),
        ("webhook key", state.webhook_key_rotation),
    ):
        current = phase or {}
        if current.get("phase") == "Distributing":
            parts.append(
                f"{what} {current.get('keyId')} distributed since {current.get('since')}, "
                "not active yet"
            )
        elif current:
            parts.append(f"{what} {current.get('keyId')} active")
    return "; ".join(parts)
