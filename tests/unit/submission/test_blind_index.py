"""The index key ring: per-purpose HKDF subkeys, key ids, the legacy v0 key, lock ordering."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest

from prequal.blind_index import (
    LEGACY_KEY_ID,
    PURPOSE_BLIND_INDEX,
    PURPOSE_IDEMPOTENCY,
    IndexKeyError,
    IndexKeyRing,
    derive,
    lock_keys,
)

PAN = "ABCDE1234F"


def test_purposes_get_different_hkdf_subkeys_of_one_root_key() -> None:
    root = os.urandom(32)
    assert derive(root, PURPOSE_BLIND_INDEX) != derive(root, PURPOSE_IDEMPOTENCY)
    assert derive(root, PURPOSE_BLIND_INDEX) != root
    ring = IndexKeyRing({"v1": root}, "v1")
    expected = hmac.new(derive(root, PURPOSE_BLIND_INDEX), b"pan:" + PAN.encode(), hashlib.sha256)
    assert ring.pan_index(PAN) == expected.digest()
    # The idempotency digest of the same text is not the blind index's.
    assert ring.request_fingerprint(b"pan:" + PAN.encode()) != ring.pan_index(PAN)


def test_the_legacy_key_keeps_the_digests_made_before_migration_0010() -> None:
    root = os.urandom(32)
    ring = IndexKeyRing({LEGACY_KEY_ID: root, "v1": os.urandom(32)}, "v1")
    before = hmac.new(root, b"pan:" + PAN.encode(), hashlib.sha256).digest()
    assert ring.pan_index(PAN, LEGACY_KEY_ID) == before
    key_before = hmac.new(root, b"idempotency-key:c1\x00k", hashlib.sha256).digest()
    assert ring.idempotency_key("c1", "k", LEGACY_KEY_ID) == key_before


def test_candidates_cover_every_live_key_active_first_and_differ_per_key() -> None:
    ring = IndexKeyRing({"v1": os.urandom(32), "v2": os.urandom(32)}, "v2")
    candidates = ring.pan_candidates(PAN)
    assert list(candidates) == ["v2", "v1"]
    assert candidates["v2"] == ring.pan_index(PAN)
    assert candidates["v1"] != candidates["v2"]
    assert ring.idempotency_candidates("c", "k")["v1"] == ring.idempotency_key("c", "k", "v1")


def test_lock_keys_are_sorted_and_shared_by_rings_that_share_a_key() -> None:
    v1, v2 = os.urandom(32), os.urandom(32)
    old = IndexKeyRing({"v1": v1}, "v1")
    new = IndexKeyRing({"v1": v1, "v2": v2}, "v2")
    old_locks = lock_keys(old.pan_candidates(PAN).values())
    new_locks = lock_keys(new.pan_candidates(PAN).values())
    assert len(new_locks) == 2
    assert new_locks == sorted(new_locks)
    assert set(old_locks) & set(new_locks)


def test_a_ring_without_its_active_key_or_with_a_short_key_is_refused() -> None:
    with pytest.raises(IndexKeyError, match="active index key id 'v2'"):
        IndexKeyRing({"v1": os.urandom(32)}, "v2")
    with pytest.raises(IndexKeyError, match="'v1' is not 32 bytes"):
        IndexKeyRing({"v1": os.urandom(16)}, "v1")
    with pytest.raises(IndexKeyError, match="'v9' is not in the ring"):
        IndexKeyRing({"v1": os.urandom(32)}, "v1").pan_index(PAN, "v9")
