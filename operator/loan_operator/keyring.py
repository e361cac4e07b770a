"""The key Secrets' content: append-only HPKE sealing key pairs.

The key Secret (`spec.encryption.keySecretName`, mounted by the credit service only) holds
`sealing_private_keys`, `sealing_public_keys` and `sealing_active_key_id`. The API's Secret
(`<keySecretName>-api`) is a projection of it without any private key: public keys and the
active key id (`api_data`). The blind-index keys live in a Secret of their own
(loan_operator.index_keys); a key Secret made before that still holds `pan_blind_index_key`,
kept (never deleted) and copied once into the index Secret. Secrets made before sealing also
hold the legacy keyring (`pan_encryption_keys`, `pan_active_key_id`); it is kept byte for byte
(the credit service opens old rows with it) and never grows.

The webhook dispatcher's key pair (it opens the endpoints' sealed signing secrets) lives in a
Secret of its own, `<keySecretName>-webhooks`, mounted by the dispatcher only, so the credit
service never holds it and the dispatcher never holds the data keys' private key. Its public
keys and active id are projected into the API's Secret beside the data keys'
(`webhook_api_data`). It rotates like the data keys' pair, by its own version
(`webhookKeyVersion`): the same `rotate`, on the Secret's own names (`WEBHOOK_NAMES`).

Keys come from the OS's CSPRNG and are never logged. Rotation has two phases: the pair
`v<version>` is appended first (distributed: the credit service can open with it) and made
active only later (`activate`), once every reader has it; existing keys are kept byte for byte
so every sealed data key stays openable. The functions return new data or say why they will
not: they never drop a key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from prequal import sealing

PRIVATE_KEYS = "sealing_private_keys"
PUBLIC_KEYS = "sealing_public_keys"
SEALING_ACTIVE_KEY_ID = "sealing_active_key_id"
BLIND_INDEX_KEY = "pan_blind_index_key"
# The legacy keyring of Secrets made before sealing: kept, never generated or rotated.
ENCRYPTION_KEYS = "pan_encryption_keys"
ACTIVE_KEY_ID = "pan_active_key_id"
API_KEYS = (PUBLIC_KEYS, SEALING_ACTIVE_KEY_ID)
WEBHOOK_PRIVATE_KEYS = "webhook_sealing_private_keys"
WEBHOOK_PUBLIC_KEYS = "webhook_sealing_public_keys"
WEBHOOK_ACTIVE_KEY_ID = "webhook_sealing_active_key_id"
WEBHOOK_API_KEYS = (WEBHOOK_PUBLIC_KEYS, WEBHOOK_ACTIVE_KEY_ID)


@dataclass(frozen=True)
class PairNames:
    """Where a Secret keeps one purpose's key pairs: private and public rings, active id."""

    private: str
    public: str
    active: str


DATA_KEY_NAMES = PairNames(PRIVATE_KEYS, PUBLIC_KEYS, SEALING_ACTIVE_KEY_ID)
WEBHOOK_NAMES = PairNames(WEBHOOK_PRIVATE_KEYS, WEBHOOK_PUBLIC_KEYS, WEBHOOK_ACTIVE_KEY_ID)


class KeyringError(ValueError):
    """The Secret exists but cannot be used or changed safely; the message says why."""


def key_id(version: int) -> str:
    return f"v{version}"


def api_secret_name(key_secret_name: str) -> str:
    return f"{key_secret_name}-api"


def webhook_secret_name(key_secret_name: str) -> str:
    return f"{key_secret_name}-webhooks"


def new_webhook_key_data(
    kem: sealing.KemName = sealing.DEFAULT_KEM, version: int = 1
) -> dict[str, str]:
    """The webhook dispatcher's Secret: one key pair, `v<version>`, active."""
    return new_key_data(version, kem, WEBHOOK_NAMES)


def webhook_api_data(data: Mapping[str, str]) -> dict[str, str]:
    """What the API's Secret takes from the dispatcher's: the public key and its id."""
    missing = [k for k in (WEBHOOK_PRIVATE_KEYS, *WEBHOOK_API_KEYS) if not data.get(k)]
    if missing:
        raise KeyringError(f"the webhook key Secret lacks {', '.join(missing)}")
    return {name: data[name] for name in WEBHOOK_API_KEYS}


def parse_keyring(text: str, name: str = ENCRYPTION_KEYS) -> dict[str, str]:
    """`v1:base64,v2:base64` → {"v1": "base64", ...}, order kept."""
    ring: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kid, sep, key = item.partition(":")
        if not sep or not kid or not key:
            raise KeyringError(f"{name} has an entry that is not key_id:base64")
        ring[kid] = key
    return ring


def format_keyring(ring: Mapping[str, str]) -> str:
    return ",".join(f"{kid}:{key}" for kid, key in ring.items())


def _append_pair(data: dict[str, str], kid: str, kem: sealing.KemName, names: PairNames) -> None:
    pair = sealing.generate_key_pair(kem)
    for name, raw in ((names.private, pair.private), (names.public, pair.public)):
        ring = parse_keyring(data.get(name, ""), name)
        ring[kid] = base64.b64encode(raw).decode()
        data[name] = format_keyring(ring)


def new_key_data(
    version: int, kem: sealing.KemName = sealing.DEFAULT_KEM, names: PairNames = DATA_KEY_NAMES
) -> dict[str, str]:
    """A fresh Secret: one sealing key pair, active."""
    kid = key_id(version)
    data = {names.active: kid}
    _append_pair(data, kid, kem, names)
    return data


def api_data(data: Mapping[str, str]) -> dict[str, str]:
    """What the API's Secret holds: everything it needs to seal, nothing that opens."""
    return {name: data[name] for name in API_KEYS if name in data}


@dataclass(frozen=True)
class Rotation:
    data: dict[str, str]
    added: str | None  # the key id that was appended, if any
    active: str


def rotate(
    existing: Mapping[str, str],
    version: int,
    *,
    activate: bool = True,
    kem: sealing.KemName = sealing.DEFAULT_KEM,
    names: PairNames = DATA_KEY_NAMES,
) -> Rotation:
    """Appends the pair `v<version>` when new and, with `activate`, makes it active.

    `existing` holds decoded values. Without `activate` the new pair is only distributed: the
    active key stays what it was until a later call activates it. A Secret from before sealing
    (legacy keyring only) gets its first pair active at once: nothing was sealed before it.
    """
    private = parse_keyring(existing.get(names.private, ""), names.private)
    public = parse_keyring(existing.get(names.public, ""), names.public)
    if list(private) != list(public):
        raise KeyringError(
            f"{names.private} and {names.public} name different key ids; it is left untouched"
        )
    kid = key_id(version)
    versions = [int(k[1:]) for k in private if k.startswith("v") and k[1:].isdigit()]
    if kid not in private and versions and version < max(versions):
        raise KeyringError(
            f"key version {version} is below the newest key v{max(versions)}; keys only move "
            "forward"
        )
    data = dict(existing)
    added = None
    first = not private
    if kid not in private:
        _append_pair(data, kid, kem, names)
        added = kid
    if activate or first or not data.get(names.active):
        data[names.active] = kid
    return Rotation(data, added, data[names.active])
