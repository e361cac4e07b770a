"""Sealed webhook signing secrets (prequal.webhook_secrets): only the dispatcher's private key
opens one, only for its own endpoint, and never as a sealed data key or the other way round."""

from __future__ import annotations

import uuid

import pytest

from prequal import sealing, webhooks
from prequal.webhook_secrets import open_secret, seal_secret


def _pair() -> tuple[sealing.Sealer, sealing.Opener]:
    pair = sealing.generate_key_pair("x25519")
    return sealing.Sealer({"w1": pair.public}, "w1"), sealing.Opener({"w1": pair.private})


def test_a_sealed_secret_opens_to_the_issued_secret_for_its_endpoint_only() -> None:
    sealer, opener = _pair()
    secret, endpoint = webhooks.new_secret(), uuid.uuid4()
    sealed = seal_secret(sealer, secret, endpoint)
    assert secret.encode() not in sealed
    assert webhooks.secret_key(secret) not in sealed
    assert open_secret(opener, sealed, endpoint) == secret
    with pytest.raises(sealing.TamperedSealError):
        open_secret(opener, sealed, uuid.uuid4())


def test_another_key_pair_cannot_open_it() -> None:
    sealer, _ = _pair()
    _, other = _pair()
    endpoint = uuid.uuid4()
    with pytest.raises(sealing.TamperedSealError):
        open_secret(other, seal_secret(sealer, webhooks.new_secret(), endpoint), endpoint)


def test_a_secret_and_a_data_key_sealed_to_one_key_do_not_open_as_each_other() -> None:
    sealer, opener = _pair()
    subject = uuid.uuid4()
    secret = webhooks.new_secret()
    with pytest.raises(sealing.TamperedSealError):
        opener.open_key(seal_secret(sealer, secret, subject), subject)
    with pytest.raises(sealing.TamperedSealError):
        open_secret(opener, sealer.seal_key(webhooks.secret_key(secret), subject), subject)
