"""The key Secrets: generated fresh, rotated by appending, never losing a key; the API's
projection holds no private key."""

from __future__ import annotations

import base64
import uuid

import pytest

from loan_operator.keyring import (
    BLIND_INDEX_KEY,
    ENCRYPTION_KEYS,
    PRIVATE_KEYS,
    PUBLIC_KEYS,
    SEALING_ACTIVE_KEY_ID,
    KeyringError,
    api_data,
    new_key_data,
    parse_keyring,
    rotate,
)
from prequal import sealing


def _opens(data: dict[str, str], kid: str) -> bool:
    """A data key sealed with the public key `kid` opens with the private key `kid`."""
    public = sealing.parse_key_list(data[PUBLIC_KEYS], PUBLIC_KEYS)
    private = sealing.parse_key_list(data[PRIVATE_KEYS], PRIVATE_KEYS)
    app = uuid.uuid4()
    sealed = sealing.Sealer(public, kid).seal_key(b"k" * 32, app)
    return sealing.Opener(private).open_key(sealed, app) == b"k" * 32


def test_new_secret_has_one_active_hybrid_key_pair_and_no_blind_index_key() -> None:
    data = new_key_data(1)
    assert list(parse_keyring(data[PRIVATE_KEYS])) == ["v1"]
    assert data[SEALING_ACTIVE_KEY_ID] == "v1"
    assert len(base64.b64decode(parse_keyring(data[PUBLIC_KEYS])["v1"])) == 1184 + 32
    assert _opens(data, "v1")
    # The blind-index keys have a Secret of their own (loan_operator.index_keys).
    assert BLIND_INDEX_KEY not in data
    assert ENCRYPTION_KEYS not in data


def test_x25519_is_a_setting() -> None:
    data = new_key_data(1, kem="x25519")
    assert len(base64.b64decode(parse_keyring(data[PUBLIC_KEYS])["v1"])) == 32
    assert _opens(data, "v1")


def test_the_api_projection_holds_no_private_key() -> None:
    data = new_key_data(1)
    projected = api_data(data)
    assert set(projected) == {PUBLIC_KEYS, SEALING_ACTIVE_KEY_ID}
    # A key Secret from before the index Secret keeps its blind-index key, not for the API here.
    assert set(api_data({**data, BLIND_INDEX_KEY: "BBBB"})) == set(projected)
    assert data[PRIVATE_KEYS] not in projected.values()


def test_same_version_changes_nothing() -> None:
    data = new_key_data(1)
    rotation = rotate(data, 1)
    assert rotation.data == data
    assert rotation.added is None


def test_rotation_appends_a_new_active_pair_and_keeps_the_old_ones_byte_for_byte() -> None:
    data = new_key_data(1)
    rotation = rotate(data, 2)
    for name in (PRIVATE_KEYS, PUBLIC_KEYS):
        ring = parse_keyring(rotation.data[name])
        assert list(ring) == ["v1", "v2"]
        assert ring["v1"] == parse_keyring(data[name])["v1"]
    assert rotation.data[SEALING_ACTIVE_KEY_ID] == "v2"
    assert rotation.added == "v2"
    assert _opens(rotation.data, "v1")
    assert _opens(rotation.data, "v2")


def test_a_lower_version_than_the_newest_key_is_refused() -> None:
    data = rotate(new_key_data(1), 3).data
    with pytest.raises(KeyringError, match="only move forward"):
        rotate(
            {
                **data,
                PRIVATE_KEYS: data[PRIVATE_KEYS].split(",", 1)[1],
                PUBLIC_KEYS: data[PUBLIC_KEYS].split(",", 1)[1],
            },
            2,
        )


def test_an_incomplete_secret_is_left_untouched() -> None:
    data = new_key_data(1)
    with pytest.raises(KeyringError, match="different key ids"):
        rotate({**data, PUBLIC_KEYS: ""}, 1)


def test_a_secret_from_before_sealing_keeps_its_keyring_and_gets_an_active_pair() -> None:
    legacy = {ENCRYPTION_KEYS: "v1:AAAA", "pan_active_key_id": "v1", BLIND_INDEX_KEY: "BBBB"}
    rotation = rotate(legacy, 1, activate=False)
    assert rotation.data[ENCRYPTION_KEYS] == "v1:AAAA"
    assert rotation.active == "v1"
    assert _opens(rotation.data, "v1")


def test_rotation_in_two_phases_distributes_before_it_activates() -> None:
    data = new_key_data(1)
    distributed = rotate(data, 2, activate=False)
    assert list(parse_keyring(distributed.data[PRIVATE_KEYS])) == ["v1", "v2"]
    assert distributed.active == "v1"
    assert api_data(distributed.data)[SEALING_ACTIVE_KEY_ID] == "v1"
    assert distributed.added == "v2"
    activated = rotate(distributed.data, 2, activate=True)
    assert activated.active == "v2"
    assert activated.added is None
    assert activated.data[PRIVATE_KEYS] == distributed.data[PRIVATE_KEYS]


def test_the_webhook_key_pair_is_its_own_and_the_api_gets_only_its_public_part() -> None:
    from loan_operator.keyring import new_webhook_key_data, webhook_api_data  # noqa: PLC0415

    hooks = new_webhook_key_data()
    data = new_key_data(1)
    assert hooks["webhook_sealing_active_key_id"] == "v1"
    assert hooks["webhook_sealing_public_keys"] != data[PUBLIC_KEYS]
    assert set(webhook_api_data(hooks)) == {
        "webhook_sealing_public_keys",
        "webhook_sealing_active_key_id",
    }
    with pytest.raises(KeyringError, match="webhook_sealing_private_keys"):
        webhook_api_data({k: v for k, v in hooks.items() if "private" not in k})


def test_the_webhook_pair_rotates_in_two_phases_on_its_own_names() -> None:
    from loan_operator.keyring import (  # noqa: PLC0415
        WEBHOOK_ACTIVE_KEY_ID,
        WEBHOOK_NAMES,
        WEBHOOK_PRIVATE_KEYS,
        WEBHOOK_PUBLIC_KEYS,
        new_webhook_key_data,
        webhook_api_data,
    )

    hooks = new_webhook_key_data()
    distributed = rotate(hooks, 2, activate=False, names=WEBHOOK_NAMES)
    assert set(distributed.data) == set(hooks)  # no data-key name appears
    assert list(parse_keyring(distributed.data[WEBHOOK_PRIVATE_KEYS])) == ["v1", "v2"]
    assert distributed.active == "v1"
    assert webhook_api_data(distributed.data)[WEBHOOK_ACTIVE_KEY_ID] == "v1"
    for name in (WEBHOOK_PRIVATE_KEYS, WEBHOOK_PUBLIC_KEYS):
        assert parse_keyring(distributed.data[name])["v1"] == parse_keyring(hooks[name])["v1"]
    activated = rotate(distributed.data, 2, activate=True, names=WEBHOOK_NAMES)
    assert (activated.active, activated.added) == ("v2", None)
    public = sealing.parse_key_list(activated.data[WEBHOOK_PUBLIC_KEYS], "public")
    private = sealing.parse_key_list(activated.data[WEBHOOK_PRIVATE_KEYS], "private")
    endpoint = uuid.uuid4()
    sealed = sealing.Sealer(public, "v2").seal_key(b"s" * 32, endpoint)
    assert sealing.Opener(private).open_key(sealed, endpoint) == b"s" * 32
