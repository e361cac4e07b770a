"""The index-key Secret's content: the API's blind-index root keys, apart from the sealing keys.

`<keySecretName>-index` holds `pan_index_keys` (`v1:base64,…`, 256-bit root keys from which
the API derives its per-purpose HMAC keys with HKDF, prequal.blind_index) and
`pan_index_active_key_id`. The API is its only reader besides `prequalctl reindex`; the key
Secret, which the credit service mounts, holds no index key any more. A pipeline whose key
Secret predates this (it held `pan_blind_index_key`) gets that key copied here once, under the
same name: the API's ring calls it `v0`, and every index stored before migration 0010 was made
with it. Then `v<indexKeyVersion>` is appended; it becomes active only after the distribution
period (every API pod holds it first), so no pod ever misses an index another pod wrote.

Keys only grow: the functions append or activate, never replace or drop a key. Retiring an old
key (after `prequalctl reindex` and the idempotency retention) is a person's edit.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from loan_operator.keyring import KeyringError, format_keyring, key_id, parse_keyring

INDEX_KEYS = "pan_index_keys"
ACTIVE_KEY_ID = "pan_index_active_key_id"
# The single key from before migration 0010, copied from the key Secret: the ring's `v0`.
LEGACY_KEY = "pan_blind_index_key"
LEGACY_KEY_ID = "v0"


def secret_name(key_secret_name: str) -> str:
    return f"{key_secret_name}-index"


@dataclass(frozen=True)
class IndexRotation:
    data: dict[str, str]
    added: str | None  # the key id that was appended, if any

    @property
    def active(self) -> str:
        return self.data[ACTIVE_KEY_ID]


def rotate(
    existing: Mapping[str, str],
    version: int,
    *,
    activate: bool,
    legacy_key: str | None = None,
) -> IndexRotation:
    """Appends `v<version>` when new and, with `activate`, makes it active.

    `existing` is the index Secret's decoded data ({} when it does not exist yet). `legacy_key`
    is the key Secret's `pan_blind_index_key`, if it has one: copied once, active until the new
    key is distributed. Without one nothing was ever indexed, so the first key is active at once.
    """
    ring = parse_keyring(existing.get(INDEX_KEYS, ""), INDEX_KEYS)
    if LEGACY_KEY_ID in ring:
        raise KeyringError(f"{INDEX_KEYS} must not name {LEGACY_KEY_ID} (it is {LEGACY_KEY})")
    kid = key_id(version)
    versions = [int(k[1:]) for k in ring if k.startswith("v") and k[1:].isdigit()]
    if kid not in ring and versions and version < max(versions):
        raise KeyringError(
            f"indexKeyVersion {version} is below the newest index key v{max(versions)}; "
            "keys only move forward"
        )
    data = dict(existing)
    if legacy_key and not data.get(LEGACY_KEY):
        data[LEGACY_KEY] = legacy_key
    first = not ring and not data.get(LEGACY_KEY)
    added = None
    if kid not in ring:
        ring[kid] = base64.b64encode(secrets.token_bytes(32)).decode()
        data[INDEX_KEYS] = format_keyring(ring)
        added = kid
    if not data.get(ACTIVE_KEY_ID):
        data[ACTIVE_KEY_ID] = kid if first else LEGACY_KEY_ID
    if activate or first:
        data[ACTIVE_KEY_ID] = kid
    return IndexRotation(data, added)
