"""The PAN key Secret: generated fresh, rotated by appending, never losing a key."""

from __future__ import annotations

import base64

import pytest

from loan_operator.keyring import (
    ACTIVE_KEY_ID,
    BLIND_INDEX_KEY,
    ENCRYPTION_KEYS,
    KeyringError,
    new_key_data,
    parse_keyring,
    rotate,
)


def test_new_secret_has_one_active_32_byte_key_and_a_blind_index_key() -> None:
    data = new_key_data(1)
    ring = parse_keyring(data[ENCRYPTION_KEYS])
    assert list(ring) == ["v1"]
    assert data[ACTIVE_KEY_ID] == "v1"
    assert len(base64.b64decode(ring["v1"])) == 32
    assert len(base64.b64decode(data[BLIND_INDEX_KEY])) == 32
    assert new_key_data(1)[BLIND_INDEX_KEY] != data[BLIND_INDEX_KEY]


def test_same_version_changes_nothing() -> None:
    data = new_key_data(1)
    rotation = rotate(data, 1)
    assert rotation.data == data
    assert rotation.added is None


def test_rotation_appends_a_new_active_key_and_keeps_the_old_ones_byte_for_byte() -> None:
    data = new_key_data(1)
    rotation = rotate(data, 2)
    ring = parse_keyring(rotation.data[ENCRYPTION_KEYS])
    assert list(ring) == ["v1", "v2"]
    assert ring["v1"] == parse_keyring(data[ENCRYPTION_KEYS])["v1"]
    assert rotation.data[ACTIVE_KEY_ID] == "v2"
    assert rotation.data[BLIND_INDEX_KEY] == data[BLIND_INDEX_KEY]
    assert rotation.added == "v2"


def test_a_lower_version_than_the_newest_key_is_refused() -> None:
    data = rotate(new_key_data(1), 3).data
    with pytest.raises(KeyringError, match="only move forward"):
        rotate({**data, ENCRYPTION_KEYS: data[ENCRYPTION_KEYS].split(",", 1)[1]}, 2)


def test_an_incomplete_secret_is_left_untouched() -> None:
    with pytest.raises(KeyringError, match="pan_blind_index_key"):
        rotate({ENCRYPTION_KEYS: "v1:AAAA", ACTIVE_KEY_ID: "v1"}, 1)


def test_rotation_in_two_phases_distributes_before_it_activates() -> None:
    data = new_key_data(1)
    distributed = rotate(data, 2, activate=False)
    assert list(parse_keyring(distributed.data[ENCRYPTION_KEYS])) == ["v1", "v2"]
    assert distributed.active == "v1"
    assert distributed.added == "v2"
    activated = rotate(distributed.data, 2, activate=True)
    assert activated.active == "v2"
    assert activated.added is None
    assert parse_keyring(activated.data[ENCRYPTION_KEYS]) == parse_keyring(
        distributed.data[ENCRYPTION_KEYS]
    )
