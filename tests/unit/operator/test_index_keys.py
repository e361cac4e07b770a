"""The index-key Secret: its own keys, the pre-0010 key carried over as v0, two-phase rotation,
keys only ever appended."""

from __future__ import annotations

import base64

import pytest

from loan_operator.index_keys import (
    ACTIVE_KEY_ID,
    INDEX_KEYS,
    LEGACY_KEY,
    rotate,
    secret_name,
)
from loan_operator.keyring import KeyringError, parse_keyring

LEGACY = base64.b64encode(b"L" * 32).decode()


def test_a_new_pipeline_gets_one_active_256_bit_key_at_once() -> None:
    rotation = rotate({}, 1, activate=False)
    ring = parse_keyring(rotation.data[INDEX_KEYS])
    assert list(ring) == ["v1"]
    assert len(base64.b64decode(ring["v1"])) == 32
    assert rotation.active == "v1"  # nothing was indexed before: no one can miss a row
    assert LEGACY_KEY not in rotation.data
    assert secret_name("retail-pan-keys") == "retail-pan-keys-index"


def test_a_pipeline_from_before_keeps_its_key_as_v0_until_v1_is_distributed() -> None:
    distributed = rotate({}, 1, activate=False, legacy_key=LEGACY)
    assert distributed.data[LEGACY_KEY] == LEGACY
    assert distributed.active == "v0"
    assert distributed.added == "v1"
    activated = rotate(distributed.data, 1, activate=True, legacy_key=LEGACY)
    assert activated.active == "v1"
    assert activated.added is None
    assert activated.data[INDEX_KEYS] == distributed.data[INDEX_KEYS]
    assert activated.data[LEGACY_KEY] == LEGACY


def test_rotation_appends_keeps_the_old_key_byte_for_byte_and_activates_later() -> None:
    first = rotate({}, 1, activate=False).data
    distributed = rotate(first, 2, activate=False)
    ring = parse_keyring(distributed.data[INDEX_KEYS])
    assert list(ring) == ["v1", "v2"]
    assert ring["v1"] == parse_keyring(first[INDEX_KEYS])["v1"]
    assert distributed.data[ACTIVE_KEY_ID] == "v1"
    assert rotate(distributed.data, 2, activate=True).active == "v2"
    assert rotate(distributed.data, 2, activate=False).data == distributed.data


def test_keys_only_move_forward_and_v0_is_never_in_the_ring() -> None:
    data = rotate(rotate({}, 1, activate=True).data, 3, activate=True).data
    only_v3 = {**data, INDEX_KEYS: data[INDEX_KEYS].split(",", 1)[1]}
    with pytest.raises(KeyringError, match="only move forward"):
        rotate(only_v3, 2, activate=True)
    with pytest.raises(KeyringError, match="must not name v0"):
        rotate({INDEX_KEYS: f"v0:{LEGACY}"}, 1, activate=True)
