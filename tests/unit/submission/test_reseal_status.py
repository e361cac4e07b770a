"""`prequalctl keys reseal --status`: a key pair is retirable only when it is not active and no
sealed data key names it; a key id that rows name but no private key here opens is called out.
The Resealer refuses to seal to an active key whose private key it does not hold."""

from __future__ import annotations

import uuid

import pytest

from prequal import sealing
from prequalctl.reseal import Resealer, status_lines


def test_status_names_active_in_use_retirable_and_unopenable_keys() -> None:
    lines = status_lines({"v1": 0, "v2": 3, "v3": 10, "v0": 2}, ["v1", "v2", "v3"], "v3")
    assert lines == [
        "v0: 2 sealed data keys (in use, and no private key here opens it)",
        "v1: 0 sealed data keys (retirable)",
        "v2: 3 sealed data keys (in use: not retirable yet)",
        "v3: 10 sealed data keys (active)",
    ]


def test_a_resealer_needs_the_active_keys_private_half_and_keeps_the_data_key() -> None:
    old, new = sealing.generate_key_pair("x25519"), sealing.generate_key_pair("x25519")
    with pytest.raises(sealing.KeyFormatError, match="'v2' has no private key"):
        Resealer(sealing.Opener({"v1": old.private}), sealing.Sealer({"v2": new.public}, "v2"))
    resealer = Resealer(
        sealing.Opener({"v1": old.private, "v2": new.private}),
        sealing.Sealer({"v2": new.public}, "v2"),
    )
    app = uuid.uuid4()
    sealed = sealing.Sealer({"v1": old.public}, "v1").seal_key(b"d" * 32, app)
    moved = resealer.reseal(sealed, app)
    assert sealing.sealed_key_id(moved) == "v2"
    assert sealing.Opener({"v2": new.private}).open_key(moved, app) == b"d" * 32
