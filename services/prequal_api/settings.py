"""The API's settings: database, public sealing keys, listen address, pool, tokens and limits.

The API holds only public keys (it seals, it never opens): the credit service's for data keys,
the webhook dispatcher's for webhook signing secrets; and the index key ring
(prequal.blind_index).
"""

from __future__ import annotations

from pydantic import field_validator

from prequal.settings import (
    DatabaseSettings,
    IndexKeySettings,
    KafkaSettings,
    SealingPublicKeySettings,
    WebhookEgressSettings,
    WebhookSealingPublicKeySettings,
)


class ApiSettings(
    DatabaseSettings,
    SealingPublicKeySettings,
    IndexKeySettings,
    KafkaSettings,
    WebhookSealingPublicKeySettings,
    WebhookEgressSettings,
):
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # /metrics is served here, not on the API port: the Ingress never routes to it.
    api_metrics_port: int = 9100
    # Swagger UI (/docs) and /openapi.json; production values turn them off.
    api_docs_enabled: bool = True
    db_pool_min_size: int = 4
    db_pool_max_size: int = 16
    # How long a request waits for a database connection before it answers 503.
    db_pool_timeout_seconds: float = 2.0
    retry_after_seconds: int = 5
    service_name: str = "prequal-api"
    # A retry with the same Idempotency-Key within this time gets the original answer; older
    # keys are ignored and deleted by a periodic purge in each API process.
    idempotency_key_retention_hours: float = 24.0
    idempotency_purge_interval_seconds: float = 600.0
    # How often the key settings are read again (prequal_api.key_refresh): a rotation's second
    # phase reaches running pods within this plus kubelet's Secret sync (about a minute).
    key_refresh_seconds: float = 15.0

    # OAuth2: who may call. The issuer is required: an API without one would be open to all.
    oidc_issuer: str
    oidc_audience: str = "prequal-api"
    # Defaults to the issuer's /.well-known/jwks.json (where Hydra and most providers serve it).
    oidc_jwks_url: str = ""
    # Where clients get tokens (client_credentials); /docs' Authorize button posts to it.
    # Defaults to <issuer>oauth2/token (Hydra's token endpoint).
    oidc_token_url: str = ""
    oidc_leeway_seconds: float = 10.0
    oidc_jwks_cache_seconds: float = 300.0
    # An unknown key id refetches the JWKS at most this often (key rollover without a stampede).
    oidc_jwks_min_refetch_seconds: float = 10.0

    # Abuse limits. Rate limits are per client, shared by every API process (token buckets in
    # PostgreSQL, leased a tenth of the burst at a time: prequal_api.rate_limits); 0 disables.
    rate_limit_post_per_second: float = 50.0
    rate_limit_post_burst: float = 100.0
    rate_limit_get_per_second: float = 200.0
    rate_limit_get_burst: float = 400.0
    # Bodies beyond this are refused with 413 while they stream in (an application is ~1 KB).
    max_body_bytes: int = 16 * 1024
    # uvicorn: connections beyond this many at once get a 503; idle keep-alive connections close
    # after this many seconds; a stop waits this long for requests in flight.
    api_limit_concurrency: int = 256
    api_timeout_keep_alive_seconds: int = 5
    api_timeout_graceful_shutdown_seconds: int = 10

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("OIDC_ISSUER must be the identity provider's URL, as tokens carry it")
        return value

    def jwks_url(self) -> str:
        return self.oidc_jwks_url or self.oidc_issuer.rstrip("/") + "/.well-known/jwks.json"

    def token_url(self) -> str:
        return self.oidc_token_url or self.oidc_issuer.rstrip("/") + "/oauth2/token"
