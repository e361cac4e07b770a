"""The JWKS cache of prequal_api.auth: key rollover without hammering the provider."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from prequal_api.auth import KeySet, TokenValidator
from prequal_api.errors import ApiError

ISSUER, AUDIENCE = "https://idp.test/", "prequal-api"


def _jwk(kid: str) -> tuple[Any, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return key, {**public, "kid": kid, "use": "sig", "alg": "RS256"}


class Provider:
    """Stands in for the identity provider's JWKS endpoint and counts the fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        return {"keys": list(self.keys)}


def _token(key: Any, kid: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": [AUDIENCE], "client_id": "c", "scp": ["s"], "exp": now + 60}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": kid})


def test_an_unknown_key_id_refetches_once_and_then_waits_for_the_interval() -> None:
    provider = Provider()
    old_key, old_jwk = _jwk("old")
    new_key, new_jwk = _jwk("new")
    provider.keys = [old_jwk]
    validator = TokenValidator(KeySet(provider, 300, 60), ISSUER, AUDIENCE, 0)

    async def scenario() -> None:
        assert (await validator.validate(_token(old_key, "old"))).client_id == "c"
        provider.keys = [old_jwk, new_jwk]  # the provider rotates
        # The first fetch was just now, so an unknown kid must wait for the refetch interval.
        with pytest.raises(ApiError) as refused:
            await validator.validate(_token(new_key, "new"))
        assert refused.value.status == 401
        assert provider.fetches == 1

    asyncio.run(scenario())

    provider2 = Provider()
    provider2.keys = [old_jwk]
    rolling = TokenValidator(KeySet(provider2, 300, 0), ISSUER, AUDIENCE, 0)

    async def rollover() -> None:
        await rolling.validate(_token(old_key, "old"))
        provider2.keys = [old_jwk, new_jwk]
        assert (await rolling.validate(_token(new_key, "new"))).client_id == "c"
        for _ in range(5):  # cached keys and tokens: no more fetches
            await rolling.validate(_token(new_key, "new"))
        assert provider2.fetches == 2

    asyncio.run(rollover())


def test_a_validated_token_is_not_remembered_past_its_expiry() -> None:
    provider = Provider()
    key, jwk_ = _jwk("k")
    provider.keys = [jwk_]
    validator = TokenValidator(KeySet(provider, 300, 0), ISSUER, AUDIENCE, 0)
    token = _token(key, "k", exp=int(time.time()) + 1)

    async def scenario() -> None:
        await validator.validate(token)
        await asyncio.sleep(
            max(
                0.0,
                jwt.decode(token, options={"verify_signature": False})["exp"] - time.time() + 0.1,
            )
        )
        with pytest.raises(ApiError) as expired:
            await validator.validate(token)
        assert "expired" in expired.value.message

    asyncio.run(scenario())
