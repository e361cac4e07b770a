"""Tokens from the session's real Hydra for tests: one line per test.

`oidc.token()` posts client_credentials for the session's first client with both scopes;
`oidc.token(scope="applications:read")` narrows the scope; `oidc.other` is a second client
(ownership tests); `oidc.client_for(...)` registers one with other scopes or a short token TTL.
`oidc.api_env()` is what the API needs to validate them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from devstack.hydra import AUDIENCE, Hydra, OAuthClient, fetch_token


@dataclass
class Oidc:
    hydra: Hydra
    client: OAuthClient
    other: OAuthClient
    _cache: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.hydra.issuer

    @property
    def token_url(self) -> str:
        return self.hydra.token_url

    def token(
        self, client: OAuthClient | None = None, scope: str | None = None, *, fresh: bool = False
    ) -> str:
        """An access token (cached per client and scope for the session unless `fresh`)."""
        who = client or self.client
        cache_key = (who.client_id, scope)
        if fresh or cache_key not in self._cache:
            self._cache[cache_key] = fetch_token(self.token_url, who, scope)
        return self._cache[cache_key]

    def headers(
        self, client: OAuthClient | None = None, scope: str | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(client, scope)}"}

    def client_for(
        self, *, scope: str | None = None, access_token_ttl: str | None = None
    ) -> OAuthClient:
        kwargs = {} if scope is None else {"scope": scope}
        return self.hydra.register_client(access_token_ttl=access_token_ttl, **kwargs)

    def api_env(self, leeway_seconds: float = 10) -> dict[str, str]:
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_JWKS_URL": self.hydra.jwks_url,
            "OIDC_LEEWAY_SECONDS": str(leeway_seconds),
        }


def authorized(http: httpx.Client, token: str) -> httpx.Client:
    """`http` with the bearer token on every request."""
    http.headers["Authorization"] = f"Bearer {token}"
    return http
