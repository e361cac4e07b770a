"""The PAN key Secret's content: an append-only keyring and a blind-index key.

Keys come from `secrets.token_bytes(32)` and are never logged. Rotation has two phases:
`v<version>` is appended first (distributed: every reader can decrypt with it) and made active
only later (`activate`), once every reader has it; existing keys are kept byte for byte so
every stored ciphertext stays readable. The functions return new data or say why they will
not: they never drop a key.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

ENCRYPTION_KEYS = "pan_encryption_keys"
ACTIVE_KEY_ID = "pan_active_key_id"
BLIND_INDEX_KEY = "pan_blind_index_key"
REQUIRED = (ENCRYPTION_KEYS, ACTIVE_KEY_ID, BLIND_INDEX_KEY)


class KeyringError(ValueError):
    """The Secret exists but cannot be used or changed safely; the message says why."""


def key_id(version: int) -> str:
    return f"v{version}"


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def parse_keyring(text: str) -> dict[str, str]:
    """`v1:base64,v2:base64` → {"v1": "base64", ...}, order kept."""
    ring: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kid, sep, key = item.partition(":")
        if not sep or not kid or not key:
            raise KeyringError(f"{ENCRYPTION_KEYS} has an entry that is not key_id:base64")
        ring[kid] = key
    return ring


def format_keyring(ring: Mapping[str, str]) -> str:
    return ",".join(f"{kid}:{key}" for kid, key in ring.items())


def new_key_data(version: int) -> dict[str, str]:
    """A fresh Secret: one encryption key, active, and a blind-index key."""
    kid = key_id(version)
    return {
        ENCRYPTION_KEYS: format_keyring({kid: _new_key()}),
        ACTIVE_KEY_ID: kid,
        BLIND_INDEX_KEY: _new_key(),
    }


@dataclass(frozen=True)
class Rotation:
    data: dict[str, str]
    added: str | None  # the key id that was appended, if any

    @property
    def active(self) -> str:
        return self.data[ACTIVE_KEY_ID]


def rotate(existing: Mapping[str, str], version: int, *, activate: bool = True) -> Rotation:
    """Appends `v<version>` when new and, with `activate`, makes it active.

    `existing` holds decoded values. Without `activate` the new key is only distributed: the
    active key stays what it was until a later call activates it.
    """
    missing = [k for k in REQUIRED if not existing.get(k)]
    if missing:
        raise KeyringError(f"the key Secret lacks {', '.join(missing)}; it is left untouched")
    ring = parse_keyring(existing[ENCRYPTION_KEYS])
    kid = key_id(version)
    versions = [int(k[1:]) for k in ring if k.startswith("v") and k[1:].isdigit()]
    if kid not in ring and versions and version < max(versions):
        raise KeyringError(
            f"keyVersion {version} is below the newest key v{max(versions)}; keys only move forward"
        )
    data = dict(existing)
    added = None
    if kid not in ring:
        ring[kid] = _new_key()
        data[ENCRYPTION_KEYS] = format_keyring(ring)
        added = kid
    if activate:
        data[ACTIVE_KEY_ID] = kid
    return Rotation(data, added)
