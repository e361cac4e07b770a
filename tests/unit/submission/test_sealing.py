"""Sealing: HPKE-sealed per-application data keys, fields under them, and the legacy PAN format."""

from __future__ import annotations

import os
import uuid

import pytest

from prequal import pan, sealing

PAN = "ABCDE1234F"
PERSONAL = b'{"first_name":"Synthetic"}'


def _pair(kem: sealing.KemName = "mlkem768-x25519") -> sealing.KeyPair:
    return sealing.generate_key_pair(kem)


def _sealer_opener(
    kem: sealing.KemName = "mlkem768-x25519", key_id: str = "v1"
) -> tuple[sealing.Sealer, sealing.Opener]:
    pair = _pair(kem)
    return sealing.Sealer({key_id: pair.public}, key_id), sealing.Opener({key_id: pair.private})


@pytest.mark.parametrize("kem", ["mlkem768-x25519", "x25519"])
def test_a_sealed_application_opens_with_the_private_key_only(kem: sealing.KemName) -> None:
    sealer, opener = _sealer_opener(kem)
    app = uuid.uuid4()
    sealed = sealer.seal(app, PAN, PERSONAL)
    assert PAN.encode() not in sealed.pan
    assert PERSONAL not in sealed.personal
    assert sealing.sealed_key_id(sealed.sealed_key) == "v1" == sealed.key_id
    data_key = opener.open_key(sealed.sealed_key, app)
    assert sealing.open_field(data_key, "pan", sealed.pan, app) == PAN.encode()
    assert sealing.open_field(data_key, "personal", sealed.personal, app) == PERSONAL


def test_the_hybrid_suite_is_the_default() -> None:
    sealer, _ = _sealer_opener()
    assert sealer.suite is sealing.Suite.MLKEM768_X25519
    assert sealer.seal(uuid.uuid4(), PAN, PERSONAL).sealed_key[1] == 1


def test_every_application_gets_its_own_data_key() -> None:
    sealer, opener = _sealer_opener()
    a, b = uuid.uuid4(), uuid.uuid4()
    key_a = opener.open_key(sealer.seal(a, PAN, PERSONAL).sealed_key, a)
    key_b = opener.open_key(sealer.seal(b, PAN, PERSONAL).sealed_key, b)
    assert key_a != key_b


def test_a_sealed_key_moved_to_another_application_does_not_open() -> None:
    sealer, opener = _sealer_opener()
    sealed = sealer.seal(uuid.uuid4(), PAN, PERSONAL)
    with pytest.raises(sealing.TamperedSealError, match="another application"):
        opener.open_key(sealed.sealed_key, uuid.uuid4())


def test_a_field_moved_to_another_application_or_column_does_not_open() -> None:
    sealer, opener = _sealer_opener()
    app = uuid.uuid4()
    sealed = sealer.seal(app, PAN, PERSONAL)
    data_key = opener.open_key(sealed.sealed_key, app)
    with pytest.raises(sealing.TamperedSealError):
        sealing.open_field(data_key, "pan", sealed.pan, uuid.uuid4())
    with pytest.raises(sealing.TamperedSealError):
        sealing.open_field(data_key, "personal", sealed.pan, app)


@pytest.mark.parametrize("position", [1, 3, 10, 500, -1])
def test_a_flipped_byte_in_the_sealed_key_fails(position: int) -> None:
    sealer, opener = _sealer_opener()
    app = uuid.uuid4()
    blob = bytearray(sealer.seal(app, PAN, PERSONAL).sealed_key)
    blob[position] ^= 0x01
    with pytest.raises(sealing.OpenError):
        opener.open_key(bytes(blob), app)


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_a_flipped_byte_in_a_field_fails(position: int) -> None:
    sealer, opener = _sealer_opener()
    app = uuid.uuid4()
    sealed = sealer.seal(app, PAN, PERSONAL)
    data_key = opener.open_key(sealed.sealed_key, app)
    blob = bytearray(sealed.pan)
    blob[position] ^= 0x01
    with pytest.raises(sealing.OpenError):
        sealing.open_field(data_key, "pan", bytes(blob), app)


def test_a_relabelled_key_id_does_not_open_under_the_other_key() -> None:
    """Rewriting the header to name another held key fails authentication, not silently."""
    one, two = _pair(), _pair()
    sealer = sealing.Sealer({"v1": one.public}, "v1")
    opener = sealing.Opener({"v1": one.private, "v2": two.private})
    app = uuid.uuid4()
    blob = bytearray(sealer.seal(app, PAN, PERSONAL).sealed_key)
    blob[4] = ord("2")
    with pytest.raises(sealing.TamperedSealError):
        opener.open_key(bytes(blob), app)


def test_an_unknown_key_id_is_a_distinct_error_naming_it() -> None:
    sealer, _ = _sealer_opener(key_id="v7")
    _, opener = _sealer_opener(key_id="v1")
    app = uuid.uuid4()
    with pytest.raises(sealing.UnknownSealingKeyError, match="'v7'") as caught:
        opener.open_key(sealer.seal(app, PAN, PERSONAL).sealed_key, app)
    assert caught.value.key_id == "v7"
    assert not isinstance(caught.value, sealing.TamperedSealError)


def test_old_keys_still_open_after_a_rotation() -> None:
    old, new = _pair(), _pair("x25519")
    app = uuid.uuid4()
    before = sealing.Sealer({"v1": old.public}, "v1").seal(app, PAN, PERSONAL)
    after = sealing.Sealer({"v1": old.public, "v2": new.public}, "v2").seal(app, PAN, PERSONAL)
    opener = sealing.Opener({"v1": old.private, "v2": new.private})
    for sealed in (before, after):
        data_key = opener.open_key(sealed.sealed_key, app)
        assert sealing.open_field(data_key, "pan", sealed.pan, app) == PAN.encode()


def test_legacy_keyring_pan_ciphertexts_are_told_apart_and_still_open() -> None:
    ring = pan.Keyring({"v1": os.urandom(32)}, "v1")
    app = uuid.uuid4()
    legacy = ring.encrypt(PAN, app)
    sealer, _ = _sealer_opener()
    assert sealing.field_version(legacy) == sealing.LEGACY_PAN_VERSION
    assert sealing.field_version(sealer.seal(app, PAN, PERSONAL).pan) == sealing.FIELD_VERSION
    assert ring.decrypt(legacy, app) == PAN


def test_malformed_sealed_keys_are_named() -> None:
    _, opener = _sealer_opener()
    for blob, reason in [
        (b"", "version"),
        (b"\x09\x01\x02v1abc", "version"),
        (b"\x01\x09\x02v1abc", "suite"),
        (b"\x01\x01\x02v1", "truncated"),
    ]:
        with pytest.raises(sealing.MalformedSealError, match=reason):
            opener.open_key(blob, uuid.uuid4())


def test_key_lists_parse_and_errors_never_echo_the_key() -> None:
    pair = _pair()
    text = sealing.format_key_list({"v1": pair.public, "v2": _pair("x25519").public})
    keys = sealing.parse_key_list(text, "SEALING_PUBLIC_KEYS")
    assert keys["v1"] == pair.public
    assert len(keys["v2"]) == 32
    secret = "not*base64*at*all"
    with pytest.raises(sealing.KeyFormatError, match="'v1' is not valid base64") as caught:
        sealing.parse_key_list(f"v1:{secret}", "SEALING_PRIVATE_KEYS")
    assert secret not in str(caught.value)
    with pytest.raises(sealing.KeyFormatError, match="twice"):
        sealing.parse_key_list(f"{text},{text}", "SEALING_PUBLIC_KEYS")
    with pytest.raises(sealing.KeyFormatError, match="not 7"):
        sealing.Sealer({"v1": b"1234567"}, "v1")
    with pytest.raises(sealing.KeyFormatError, match="no public key"):
        sealing.Sealer({"v1": pair.public}, "v2")
