"""Who is calling: OAuth2 bearer tokens (JWT access tokens) checked against the provider's JWKS.

The routes ask one question, `Depends(require_scope(...))`, and get a `Principal` back. The
signature, `iss`, `aud`, `exp`/`nbf` (with a small leeway) and the scope are checked by PyJWT
against keys from the provider's JWKS. The key set is fetched once and kept for
`oidc_jwks_cache_seconds`; a token signed by a key id we do not know (the provider rotated its
keys) triggers one refetch, at most every `oidc_jwks_min_refetch_seconds`, so garbage key ids
cannot make us hammer the provider. A validated token costs no network call. When the provider
is unreachable, the keys in hand stay in use; with none at all the answer is a 503.

Clients reuse a token for its lifetime, so a validated token is remembered (in memory, up to
`CACHE_SIZE` tokens, until it expires or `oidc_jwks_cache_seconds` pass, whichever is first):
its next use costs a dict lookup instead of an RSA verification (~0.1-0.9 ms, measured in
bench_api). A key dropped from the JWKS is therefore honoured until that bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from fastapi import Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2
from fastapi.security.utils import get_authorization_scheme_param

from prequal_api.errors import ApiError

log = logging.getLogger(__name__)

SCOPE_WRITE = "applications:write"
SCOPE_READ = "applications:read"
SCOPE_WEBHOOKS = "webhooks:manage"
SCOPE_ERASE = "applications:erase"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]

SCHEME_NAME = "OAuth2 (client credentials)"
# Documents the scheme in OpenAPI (the Authorize button in /docs); we raise our own errors.
# The token URL is a setting: docs.py writes it into the served document.
client_credentials = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(
            tokenUrl="",
            scopes={
                SCOPE_WRITE: "submit applications (POST /applications)",
                SCOPE_READ: "read the status of this client's applications",
                SCOPE_WEBHOOKS: "register, list and remove this client's webhook endpoints",
                SCOPE_ERASE: "erase the personal data of this client's applications",
            },
        )
    ),
    scheme_name=SCHEME_NAME,
    description="A JWT access token from the lender's identity provider (client_credentials "
    "grant), with the audience of this API, sent as `Authorization: Bearer …`.",
    auto_error=False,
)


@dataclass(frozen=True)
class Principal:
    """The calling client: the owner of what it submits."""

    client_id: str
    scopes: frozenset[str]


def _unauthorized(message: str, error: str = "invalid_token") -> ApiError:
    # RFC 6750: no error attribute when the request carried no token at all.
    challenge = 'Bearer realm="prequal-api"'
    if error:
        challenge += f', error="{error}"'
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": challenge})


def _forbidden(scope: str) -> ApiError:
    challenge = f'Bearer realm="prequal-api", error="insufficient_scope", scope="{scope}"'
    return ApiError(
        403,
        "INSUFFICIENT_SCOPE",
        f"the token lacks the scope {scope}; request it from the identity provider",
        headers={"WWW-Authenticate": challenge},
    )


FetchJwks = Callable[[], Awaitable[dict[str, Any]]]


class KeySet:
    """The provider's signing keys by key id, refreshed on expiry or on an unknown key id."""

    def __init__(self, fetch: FetchJwks, cache_seconds: float, min_refetch_seconds: float) -> None:
        self._fetch = fetch
        self._cache_seconds = cache_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> jwt.PyJWK:
        now = time.monotonic()
        if now - self._fetched_at > self._cache_seconds:
            await self._refresh(now, stale_ok=True)
        found = self._keys.get(kid)
        if found is None and time.monotonic() - self._fetched_at >= self._min_refetch_seconds:
            await self._refresh(time.monotonic(), stale_ok=True)
            found = self._keys.get(kid)
        if found is None:
            raise _unauthorized("the token is signed by a key the identity provider does not list")
        return found

    async def _refresh(self, asked_at: float, *, stale_ok: bool) -> None:
        async with self._lock:
            if self._fetched_at >= asked_at:  # another request refreshed while we waited
                return
            try:
                document = await self._fetch()
                self.fetches += 1
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch failed: %s", type(exc).__name__)
                if stale_ok and self._keys:
                    return
                raise ApiError(
                    503,
                    "IDENTITY_PROVIDER_UNAVAILABLE",
                    "the identity provider's keys could not be fetched; retry later",
                    headers={"Retry-After": "5"},
                ) from exc
            keys: dict[str, jwt.PyJWK] = {}
            for entry in document.get("keys", []):
                if entry.get("use", "sig") != "sig" or "kid" not in entry:
                    continue
                try:
                    keys[entry["kid"]] = jwt.PyJWK.from_dict(entry)
                except jwt.PyJWTError:
                    continue  # a key type this PyJWT cannot use: skip it, keep the others
            self._keys = keys
            self._fetched_at = time.monotonic()


CACHE_SIZE = 10_000


@dataclass
class TokenValidator:
    keys: KeySet
    issuer: str
    audience: str
    leeway_seconds: float
    cache_seconds: float = 300.0
    _validated: dict[str, tuple[float, Principal]] = field(default_factory=dict)

    async def validate(self, token: str) -> Principal:
        remembered = self._validated.get(token)
        if remembered is not None:
            until, found = remembered
            if time.time() < until:
                return found
            del self._validated[token]
        found, expires = await self._verify(token)
        if len(self._validated) >= CACHE_SIZE:
            self._validated.clear()  # crude but bounded; refilled by the next requests
        self._validated[token] = (min(expires, time.time() + self.cache_seconds), found)
        return found

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _unauthorized("the bearer token is not a JWT") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or header.get("alg") not in ALGORITHMS:
            raise _unauthorized("the token names no key id or an algorithm we do not accept")
        key = await self.keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired; get a new one") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the token is not meant for this API (aud)") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("the token comes from another issuer (iss)") from None
        except jwt.PyJWTError:
            raise _unauthorized("the token's signature or claims are invalid") from None
        return Principal(_client_id(claims), _scopes(claims)), float(claims["exp"])


def _client_id(claims: dict[str, Any]) -> str:
    for name in ("client_id", "azp", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    raise _unauthorized("the token names no client (client_id, azp or sub)")


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    # Hydra puts a list in `scp`; RFC 9068 a space-separated string in `scope`.
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(str(s) for s in scp)
    scope = claims.get("scope")
    return frozenset(scope.split()) if isinstance(scope, str) else frozenset()


def http_jwks_fetcher(url: str, timeout: float = 3.0) -> FetchJwks:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            resp = await client.get(url)
            resp.raise_for_status()
            document: dict[str, Any] = resp.json()
            return document

    return fetch


async def authorize(
    request: Request, authorization: str | None, scope: str, limiter: str
) -> Principal:
    """The caller's Principal, if its token is valid and has `scope` and the client is within
    the rate limit named `limiter` (app.state.rate_limits): 401, then 403, then 429."""
    kind, token = get_authorization_scheme_param(authorization)
    if kind.lower() != "bearer" or not token:
        raise _unauthorized("a bearer token is required (Authorization: Bearer …)", error="")
    validator: TokenValidator = request.app.state.token_validator
    found = await validator.validate(token)
    if scope not in found.scopes:
        raise _forbidden(scope)
    await request.app.state.rate_limits[limiter].check(found.client_id)
    return found


def require_scope(scope: str, limiter: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: `authorize` for `scope` and `limiter` (the hot routes call it
    directly: prequal_api.direct_route)."""

    async def principal(
        request: Request,
        authorization: str | None = Security(client_credentials, scopes=[scope]),
    ) -> Principal:
        return await authorize(request, authorization, scope, limiter)

    return principal
