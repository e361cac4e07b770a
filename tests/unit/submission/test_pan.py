"""PAN protection: AES-256-GCM round trips, tampering, key ids, rotation, blind index, masking."""

from __future__ import annotations

import os
import uuid

import pytest

from prequal import pan

PAN = "ABCDE1234F"


def _keyring(*ids: str, active: str | None = None) -> pan.Keyring:
    return pan.Keyring({i: os.urandom(32) for i in ids}, active or ids[-1])


def test_encrypt_then_decrypt_returns_the_pan_and_hides_it() -> None:
    ring = _keyring("v1")
    app = uuid.uuid4()
    blob = ring.encrypt(PAN, app)
    assert PAN.encode() not in blob
    assert ring.decrypt(blob, app) == PAN
    assert pan.Keyring.key_id_of(blob) == "v1"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    ring = _keyring("v1")
    app = uuid.uuid4()
    first, second = ring.encrypt(PAN, app), ring.encrypt(PAN, app)
    assert first != second
    header = 2 + len("v1")
    assert first[header : header + 12] != second[header : header + 12]


@pytest.mark.parametrize("position", [5, 10, 20, -1])
def test_a_flipped_byte_fails_authentication(position: int) -> None:
    ring = _keyring("v1")
    app = uuid.uuid4()
    blob = bytearray(ring.encrypt(PAN, app))
    blob[position] ^= 0x01
    with pytest.raises(pan.TamperedCiphertextError, match="altered"):
        ring.decrypt(bytes(blob), app)


def test_a_ciphertext_moved_to_another_application_fails() -> None:
    ring = _keyring("v1")
    blob = ring.encrypt(PAN, uuid.uuid4())
    with pytest.raises(pan.TamperedCiphertextError, match="another application"):
        ring.decrypt(blob, uuid.uuid4())


def test_an_unknown_key_id_is_named_in_the_error() -> None:
    app = uuid.uuid4()
    blob = _keyring("v7").encrypt(PAN, app)
    with pytest.raises(pan.UnknownKeyIdError, match="'v7'"):
        _keyring("v1").decrypt(blob, app)


def test_relabelling_a_ciphertext_with_another_key_id_fails() -> None:
    ring = pan.Keyring({"v1": os.urandom(32), "v2": os.urandom(32)}, "v1")
    app = uuid.uuid4()
    blob = ring.encrypt(PAN, app)
    relabelled = blob.replace(b"v1", b"v2", 1)
    with pytest.raises(pan.TamperedCiphertextError):
        ring.decrypt(relabelled, app)


@pytest.mark.parametrize("blob", [b"", b"\x02v1", b"\x01\x02v1" + b"\x00" * 10])
def test_garbage_is_reported_as_malformed(blob: bytes) -> None:
    with pytest.raises(pan.MalformedCiphertextError):
        _keyring("v1").decrypt(blob, uuid.uuid4())


def test_rotation_keeps_old_ciphertexts_readable_and_encrypts_with_the_new_key() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    before = pan.Keyring({"v1": old_key}, "v1")
    app = uuid.uuid4()
    old_blob = before.encrypt(PAN, app)
    after = pan.Keyring({"v1": old_key, "v2": new_key}, "v2")
    new_blob = after.encrypt(PAN, app)
    assert after.decrypt(old_blob, app) == PAN
    assert after.decrypt(new_blob, app) == PAN
    assert pan.Keyring.key_id_of(new_blob) == "v2"
    with pytest.raises(pan.UnknownKeyIdError):
        before.decrypt(new_blob, app)


def test_keyring_rejects_an_active_key_it_does_not_hold_and_short_keys() -> None:
    with pytest.raises(ValueError, match="not in the keyring"):
        pan.Keyring({"v1": os.urandom(32)}, "v2")
    with pytest.raises(ValueError, match="32 bytes"):
        pan.Keyring({"v1": os.urandom(16)}, "v1")


def test_blind_index_is_deterministic_per_key_and_differs_across_keys() -> None:
    key = os.urandom(32)
    assert pan.blind_index(PAN, key) == pan.blind_index(PAN, key)
    assert pan.blind_index(PAN, key) != pan.blind_index("FGHIJ5678K", key)
    assert pan.blind_index(PAN, key) != pan.blind_index(PAN, os.urandom(32))
    assert len(pan.blind_index(PAN, key)) == 32


def test_masking_keeps_only_the_last_four_characters() -> None:
    assert pan.mask_pan(PAN) == "XXXXXX234F"


def test_normalize_upper_cases_and_trims_and_rejects_non_pans_without_echoing() -> None:
    assert pan.normalize_pan("  abcde1234f ") == PAN
    with pytest.raises(pan.InvalidPanError) as caught:
        pan.normalize_pan("ABCDE12345")
    assert "ABCDE12345" not in str(caught.value)


def test_transport_encoding_round_trips_and_rejects_bad_base64() -> None:
    blob = _keyring("v1").encrypt(PAN, uuid.uuid4())
    assert pan.from_transport(pan.to_transport(blob)) == blob
    with pytest.raises(pan.MalformedCiphertextError):
        pan.from_transport("not base64!")
