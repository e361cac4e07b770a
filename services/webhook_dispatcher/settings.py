"""webhook-dispatcher settings (docs/configuration.md): the consumer's, plus delivery's.

How a slow or failing endpoint is kept from hurting anything else: each attempt has a timeout
(`WEBHOOK_TIMEOUT_SECONDS`), at most `WEBHOOK_ENDPOINT_CONCURRENCY` attempts per endpoint run at
once across every dispatcher process (slots shared in PostgreSQL), out of `WEBHOOK_WORKERS` per
process; a failed attempt parks the delivery in PostgreSQL until its backoff ends. After
`WEBHOOK_MAX_ATTEMPTS` attempts it is dead. An attempt's lease, after which a killed process's
attempt is made again and its slot is free, is the timeout plus `WEBHOOK_LEASE_MARGIN_SECONDS`.

It alone holds `WEBHOOK_SEALING_PRIVATE_KEYS` (it opens the endpoints' sealed signing secrets),
and it delivers only to public addresses unless `WEBHOOK_ALLOWED_NETWORKS` allows more.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from prequal.consumer_process import ConsumerSettings
from prequal.settings import WebhookEgressSettings, WebhookSealingPrivateKeySettings


class DispatcherSettings(ConsumerSettings, WebhookSealingPrivateKeySettings, WebhookEgressSettings):
    metrics_port: int = 9105
    consumer_group: str = "webhook-dispatcher"
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)
    # Backoff after attempt n: initial × 2^(n-1), at most the maximum, plus up to 10 % jitter.
    # With the defaults, 8 attempts span about 4 minutes (2+4+8+16+32+64+128 s).
    webhook_backoff_initial_seconds: float = Field(default=2.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=600.0, gt=0)
    webhook_workers: int = Field(default=8, ge=1, le=256)
    # Per endpoint, across every replica; replicas should agree on it (the bound is the
    # largest value any running replica has).
    webhook_endpoint_concurrency: int = Field(default=2, ge=1, le=64)
    # How long after the timeout a killed dispatcher's attempts keep their slots and rows.
    webhook_lease_margin_seconds: float = Field(default=30.0, ge=1, le=600)
    # How often due deliveries are looked for when nothing wakes the dispatcher earlier.
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _concurrency_fits(self) -> DispatcherSettings:
        if self.webhook_endpoint_concurrency > self.webhook_workers:
            raise ValueError(
                "WEBHOOK_ENDPOINT_CONCURRENCY exceeds WEBHOOK_WORKERS; lower it or add workers"
            )
        return self
