"""Who may call: bearer tokens from the session's real Hydra, checked by the API process."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.hydra import AUDIENCE
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess, start_api
from tests.tokens import Oidc

ERROR_KEYS = {"error_code", "message", "details", "request_id"}


def _foreign_token(oidc: Oidc, *, issuer: str, kid: str) -> str:
    """A well-formed token signed with a key pair Hydra never saw."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": [AUDIENCE],
        "client_id": oidc.client.client_id,
        "scp": ["applications:write", "applications:read"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_business_routes_without_a_token_are_401_with_a_bearer_challenge(api: ApiProcess) -> None:
    with api.client(token="") as anonymous:
        post = anonymous.post("/applications", json=application())
        get = anonymous.get(f"/applications/{uuid.uuid4()}/status")
        assert anonymous.get("/health").status_code == 200  # liveness and readiness stay open
        assert anonymous.get("/ready").status_code == 200
    for response in (post, get):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert set(response.json()) == ERROR_KEYS
        assert response.json()["error_code"] == "UNAUTHORIZED"


def test_a_token_that_is_not_a_jwt_is_401(api: ApiProcess) -> None:
    with api.client(token="not-a-jwt") as http:
        response = http.post("/applications", json=application())
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_tokens_from_another_issuer_or_key_are_401(api: ApiProcess, oidc: Oidc) -> None:
    hydra_kid = jwt.get_unverified_header(oidc.token())["kid"]
    other_issuer = _foreign_token(oidc, issuer="https://idp.example.invalid/", kid="foreign")
    # Our issuer and a kid Hydra lists, but signed by another key: the signature must fail.
    forged = _foreign_token(oidc, issuer=oidc.issuer, kid=hydra_kid)
    for token in (other_issuer, forged):
        with api.client(token=token) as http:
            response = http.post("/applications", json=application())
        assert response.status_code == 401, response.text
        assert response.json()["error_code"] == "UNAUTHORIZED"


def test_a_token_for_another_audience_is_401(api: ApiProcess, oidc: Oidc) -> None:
    other_api = oidc.hydra.register_client(audience="another-api")
    with api.client(token=oidc.token(other_api)) as http:
        response = http.post("/applications", json=application())
    assert response.status_code == 401
    assert "aud" in response.json()["message"]


def test_a_token_without_the_scope_is_403(api: ApiProcess, oidc: Oidc) -> None:
    reader = oidc.client_for(scope="applications:read")
    with api.client(token=oidc.token(reader)) as http:
        response = http.post("/applications", json=application())
        assert http.get(f"/applications/{uuid.uuid4()}/status").status_code == 404  # may read
    assert response.status_code == 403
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["error_code"] == "INSUFFICIENT_SCOPE"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_an_expired_token_is_401(tmp_path: Path, api_env: dict[str, str], oidc: Oidc) -> None:
    strict = start_api(tmp_path, {**api_env, "OIDC_LEEWAY_SECONDS": "0"}, "api-no-leeway")
    try:
        short_lived = oidc.client_for(access_token_ttl="2s")
        token = oidc.token(short_lived)
        expires = jwt.decode(token, options={"verify_signature": False})["exp"]
        with strict.client(token=token) as http:
            assert http.post("/applications", json=application()).status_code == 202
            while time.time() < expires + 1:  # exp is whole seconds: one past it, expired
                time.sleep(0.2)
            response = http.post("/applications", json=application())
        assert response.status_code == 401
        assert "expired" in response.json()["message"]
    finally:
        strict.process.stop()


def test_a_key_rotated_in_hydra_is_fetched_once_and_old_tokens_stay_valid(
    tmp_path: Path, api_env: dict[str, str], oidc: Oidc
) -> None:
    api = start_api(tmp_path, {**api_env, "OIDC_JWKS_MIN_REFETCH_SECONDS": "0"}, "api-rotation")
    try:
        client = oidc.client_for()
        before = oidc.token(client)
        with api.client(token=before) as http:
            assert http.post("/applications", json=application()).status_code == 202
        new_kid = oidc.hydra.rotate_signing_key()
        after = oidc.token(client, fresh=True)
        assert jwt.get_unverified_header(after)["kid"] == new_kid
        assert jwt.get_unverified_header(before)["kid"] != new_kid
        for token in (after, before):
            with api.client(token=token) as http:
                assert http.post("/applications", json=application()).status_code == 202
    finally:
        api.process.stop()


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_another_scheme_or_an_empty_bearer_is_401(api: ApiProcess, header: str) -> None:
    response = httpx.post(
        f"{api.url}/applications", json=application(), headers={"Authorization": header}, timeout=10
    )
    assert response.status_code == 401
