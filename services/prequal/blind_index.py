"""The index key ring: keyed digests that find a PAN (or a request) again, and that can rotate.

A ring holds root keys by id, one of them active. Each purpose gets its own HMAC-SHA256 key,
derived from a root key with HKDF-SHA256 (RFC 5869; no salt, `info` names the purpose), so a
digest made for one purpose says nothing about another:

    root key v<N> ──HKDF(info="blind-index")─────────────▶ applications.pan_blind_index
                  └─HKDF(info="idempotency-fingerprint")─▶ idempotency_keys.key_hmac, request_hmac

Every stored digest carries the id of the root key it was made with. New digests use the
active key; lookups try every live key (`candidates`), so a row written under an older key is
still found while `prequalctl reindex` moves it, and an API pod that has not yet activated the
new key still finds what a pod that has wrote.

Key id `v0` is the single blind-index key from before migration 0010 (`PAN_BLIND_INDEX_KEY`):
its digests were made with the root key itself, for both purposes, so it keeps that
derivation; the migration labels every existing row `v0`. Rotate away from it like any other.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PURPOSE_BLIND_INDEX = "blind-index"
PURPOSE_IDEMPOTENCY = "idempotency-fingerprint"
PURPOSES = (PURPOSE_BLIND_INDEX, PURPOSE_IDEMPOTENCY)
LEGACY_KEY_ID = "v0"
ROOT_KEY_BYTES = 32


class IndexKeyError(ValueError):
    """The ring cannot be built; the message names the key id, never a key."""


def derive(root: bytes, purpose: str) -> bytes:
    """The purpose's 256-bit HMAC key: HKDF-SHA256(root, salt=none, info=purpose)."""
    if purpose not in PURPOSES:
        raise IndexKeyError(f"unknown index key purpose {purpose!r}")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode("ascii")
    ).derive(root)


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class IndexKeyRing:
    """Root keys by id; digests under the active one, lookups under every one."""

    keys: Mapping[str, bytes]
    active_key_id: str
    _subkeys: dict[tuple[str, str], bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.active_key_id not in self.keys:
            raise IndexKeyError(f"active index key id {self.active_key_id!r} is not in the ring")
        for key_id, root in self.keys.items():
            if len(root) != ROOT_KEY_BYTES:
                raise IndexKeyError(f"index key {key_id!r} is not {ROOT_KEY_BYTES} bytes")
            for purpose in PURPOSES:
                # The legacy key was used as the HMAC key itself (before migration 0010).
                subkey = root if key_id == LEGACY_KEY_ID else derive(root, purpose)
                self._subkeys[(key_id, purpose)] = subkey

    @property
    def key_ids(self) -> list[str]:
        """Live key ids, the active one first, then the others in the ring's order."""
        return [self.active_key_id, *(k for k in self.keys if k != self.active_key_id)]

    def _key(self, key_id: str | None, purpose: str) -> bytes:
        try:
            return self._subkeys[(key_id or self.active_key_id, purpose)]
        except KeyError:
            raise IndexKeyError(f"index key id {key_id!r} is not in the ring") from None

    def pan_index(self, pan: str, key_id: str | None = None) -> bytes:
        """HMAC of the normalized PAN: equal PANs meet under one key, the PAN stays unknown."""
        return _hmac(self._key(key_id, PURPOSE_BLIND_INDEX), b"pan:" + pan.encode("ascii"))

    def idempotency_key(self, client_id: str, key: str, key_id: str | None = None) -> bytes:
        """Idempotency keys are per client and stored only as an HMAC of (client, key)."""
        message = b"idempotency-key:" + client_id.encode() + b"\x00" + key.encode()
        return _hmac(self._key(key_id, PURPOSE_IDEMPOTENCY), message)

    def request_fingerprint(self, canonical: bytes, key_id: str | None = None) -> bytes:
        """A request body holds a PAN, so it is fingerprinted with a secret key, never bare."""
        return _hmac(self._key(key_id, PURPOSE_IDEMPOTENCY), b"idempotency:" + canonical)

    def pan_candidates(self, pan: str) -> dict[str, bytes]:
        """The PAN's index under every live key, by key id (the active one first)."""
        return {key_id: self.pan_index(pan, key_id) for key_id in self.key_ids}

    def idempotency_candidates(self, client_id: str, key: str) -> dict[str, bytes]:
        return {k: self.idempotency_key(client_id, key, k) for k in self.key_ids}


def lock_keys(digests: Iterable[bytes]) -> list[int]:
    """Advisory-lock keys of the digests, sorted: every transaction takes them in one order.

    One PAN's submissions must queue whichever key each API pod has active. A pod locks the
    PAN's digest under every key it holds; two pods whose rings share at least one key (the
    two-phase rollout guarantees it: a key reaches every pod before any pod activates it, and
    is retired only after every pod moved on) share at least one lock. Taking them in ascending
    order means two transactions never hold one each while waiting for the other's.
    """
    return sorted({int.from_bytes(d[:8], "big", signed=True) for d in digests})
