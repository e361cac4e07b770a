"""ORY Hydra, the local OAuth2/OIDC provider: its own database on our PostgreSQL, two ports.

The lender's identity provider in production; here it issues the API clients' tokens for tests
and `make run`. It runs `hydra serve all --dev` (plain HTTP on loopback) with JWT access tokens
(`strategies.access_token: jwt`) so the API validates them offline against the JWKS. The
system secret (which encrypts Hydra's signing keys at rest) is generated per start, so the
database is created afresh each time: clients are registered per run anyway.

`cors_origins` lets browsers on those origins (the API's, for Swagger UI's Authorize button in
/docs) call the public port: Hydra answers their preflight and sets Access-Control-Allow-Origin.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.net import LOOPBACK, free_port, http_ok
from devstack.postgres import Postgres
from devstack.process import ComponentStartError, ManagedProcess, SingleProcessComponent
from devstack.tools import tool

SCOPES = "applications:write applications:read applications:erase webhooks:manage"
AUDIENCE = "prequal-api"
ACCESS_TOKEN_SET = "hydra.jwt.access-token"  # noqa: S105 - a key set name
ID_TOKEN_SET = "hydra.openid.id-token"  # noqa: S105 - a key set name
# Generating an RSA-4096 signing key takes seconds, and minutes on a loaded machine.
KEY_GENERATION_TIMEOUT = 300.0


@dataclass(frozen=True)
class OAuthClient:
    """A registered client. `secret` is generated per run: never log or commit it."""

    client_id: str
    secret: str = field(repr=False)
    scope: str
    audience: str


@dataclass
class Hydra(SingleProcessComponent):
    """One Hydra; `issuer`, `token_url` and `jwks_url` are what the API and clients need."""

    run_dir: Path
    postgres: Postgres
    database: str = "hydra"
    public_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    access_token_ttl: str = "1h"  # noqa: S105 - a lifespan
    # The address of the public (token, JWKS) port and so of the issuer: loopback, or the pod
    # bridge's address when pods on the local node must fetch the JWKS (`make cluster`).
    host: str = LOOPBACK
    # Origins (scheme://host:port) whose pages may call the token endpoint: the API's /docs.
    cors_origins: tuple[str, ...] = ()
    process: ManagedProcess | None = None

    @property
    def issuer(self) -> str:
        # Hydra normalizes its issuer to end with a slash; tokens carry it verbatim.
        return f"http://{self.host}:{self.public_port}/"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}oauth2/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}.well-known/jwks.json"

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "hydra.log"

    def _cors_env(self) -> dict[str, str]:
        if not self.cors_origins:
            return {}
        return {
            "SERVE_PUBLIC_CORS_ENABLED": "true",
            "SERVE_PUBLIC_CORS_ALLOWED_ORIGINS": json.dumps(list(self.cors_origins)),
            "SERVE_PUBLIC_CORS_ALLOWED_METHODS": json.dumps(["GET", "POST"]),
            # Hydra's default headers plus the one Swagger UI adds to its token request.
            "SERVE_PUBLIC_CORS_ALLOWED_HEADERS": json.dumps(
                ["Accept", "Authorization", "Content-Type", "X-Requested-With"]
            ),
        }

    def _env(self, dsn: str) -> dict[str, str]:
        return {
            **self._cors_env(),
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")},
            "DSN": dsn,
            "SECRETS_SYSTEM": secrets.token_urlsafe(32),
            "URLS_SELF_ISSUER": self.issuer,
            "SERVE_PUBLIC_HOST": self.host,
            "SERVE_PUBLIC_PORT": str(self.public_port),
            "SERVE_ADMIN_HOST": LOOPBACK,
            "SERVE_ADMIN_PORT": str(self.admin_port),
            "STRATEGIES_ACCESS_TOKEN": "jwt",
            "TTL_ACCESS_TOKEN": self.access_token_ttl,
            "LOG_LEVEL": "warn",
            "LOG_LEAK_SENSITIVE_VALUES": "false",
        }

    def start(self, timeout: float = 60) -> Hydra:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        url = self.postgres.create_database(self.database)
        dsn = url.replace("postgresql://", "postgres://", 1) + "?sslmode=disable"
        env = self._env(dsn)
        migrated = subprocess.run(
            [tool("hydra"), "migrate", "sql", "up", "--read-from-env", "--yes"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            raise ComponentStartError(f"hydra migrate sql failed:\n{migrated.stderr[-3000:]}")
        self.process = ManagedProcess(
            "hydra", [tool("hydra"), "serve", "all", "--dev"], self.log_path, env=env
        )
        self.process.start()
        self.process.wait_ready(lambda: http_ok(f"{self.admin_url}/health/ready"), timeout)
        # Hydra creates a missing signing key on the first request that needs it, once per
        # request: on a loaded machine every 2-second readiness probe started another RSA-4096
        # generation and none finished. One admin call per key set generates each key once.
        for key_set in (ID_TOKEN_SET, ACCESS_TOKEN_SET):
            self._ensure_key_set(key_set)
        self.process.wait_ready(
            lambda: http_ok(f"{self.issuer}.well-known/openid-configuration"), timeout
        )
        return self

    def _ensure_key_set(self, key_set: str) -> None:
        url = f"{self.admin_url}/admin/keys/{key_set}"
        if httpx.get(url, timeout=10).status_code == 200:
            return
        resp = httpx.post(
            url,
            json={"alg": "RS256", "use": "sig", "kid": f"{key_set}-{secrets.token_hex(4)}"},
            timeout=KEY_GENERATION_TIMEOUT,
        )
        if resp.status_code >= 300:
            raise ComponentStartError(
                f"hydra could not create its {key_set} signing key ({resp.status_code}): "
                f"{resp.text[:500]}; see {self.log_path}"
            )

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, f"{self.admin_url}{path}", json=body, timeout=10)
        if resp.status_code >= 300:
            raise ComponentStartError(
                f"hydra admin {method} {path} answered {resp.status_code}: {resp.text[:500]}"
            )
        return resp.json() if resp.content else None

    def register_client(
        self,
        client_id: str | None = None,
        *,
        scope: str = SCOPES,
        audience: str = AUDIENCE,
        access_token_ttl: str | None = None,
        auth_method: str = "client_secret_post",
    ) -> OAuthClient:
        """A client_credentials client with a fresh secret, allowed `scope` and `audience`.
        Hydra accepts the secret only the way `auth_method` says: in the form body
        (`client_secret_post`, our scripts) or as HTTP Basic (`client_secret_basic`, Swagger UI).
        """
        client_id = client_id or f"client-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(32)
        self._admin(
            "POST",
            "/admin/clients",
            {
                "client_id": client_id,
                "client_secret": secret,
                "grant_types": ["client_credentials"],
                "response_types": ["token"],
                "scope": scope,
                "audience": [audience],
                "token_endpoint_auth_method": auth_method,
            },
        )
        if access_token_ttl is not None:
            self._admin(
                "PUT",
                f"/admin/clients/{client_id}/lifespans",
                {"client_credentials_grant_access_token_lifespan": access_token_ttl},
            )
        return OAuthClient(client_id, secret, scope, audience)

    def rotate_signing_key(self) -> str:
        """Adds a new access-token signing key (Hydra signs with the newest); returns its kid."""
        kid = f"rotated-{secrets.token_hex(4)}"
        body = self._admin(
            "POST", f"/admin/keys/{ACCESS_TOKEN_SET}", {"alg": "RS256", "use": "sig", "kid": kid}
        )
        return str(body["keys"][0]["kid"])


def fetch_token(
    token_url: str, client: OAuthClient, scope: str | None = None, audience: str | None = None
) -> str:
    """One standard client_credentials POST; returns the access token."""
    resp = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.secret,
            "scope": client.scope if scope is None else scope,
            "audience": client.audience if audience is None else audience,
        },
        timeout=10,
    )
    if resp.status_code != 200:
        raise RuntimeError(f"token request answered {resp.status_code}: {resp.text[:300]}")
    return str(resp.json()["access_token"])
