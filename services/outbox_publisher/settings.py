"""The publisher's settings (docs/configuration.md, `OUTBOX_*` rows)."""

from __future__ import annotations

from pydantic import Field

from prequal.settings import DatabaseSettings, KafkaSettings


class PublisherSettings(DatabaseSettings, KafkaSettings):
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    # Rows claimed per transaction; large batches amortize the round trips.
    outbox_batch_size: int = Field(default=5000, ge=1, le=50_000)
    # Threads per instance, each publishing its share of the instance's lanes.
    outbox_workers: int = Field(default=2, ge=1, le=16)
    # Fallback wake-up when no NOTIFY arrives (and the pace of pure polling without LISTEN).
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0)
    # false: no LISTEN, one batch per poll interval (how the dev log's publisher behaved).
    outbox_listen: bool = True
    # true: wait for each record's confirmation before the next (the dev log's way; slow).
    outbox_flush_per_record: bool = False
    # true: a confirmed batch's rows are deleted; false: marked published_at, purged later.
    outbox_delete_published: bool = True
    outbox_delivery_timeout_seconds: float = Field(default=15.0, gt=0)
    outbox_retention_seconds: float = Field(default=3600.0, ge=0)
    outbox_backoff_max_seconds: float = Field(default=30.0, gt=0)
    outbox_rebalance_interval_seconds: float = Field(default=2.0, gt=0)
    service_name: str = "outbox-publisher"
