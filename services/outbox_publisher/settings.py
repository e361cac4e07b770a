"""The publisher's settings (docs/configuration.md, `OUTBOX_*` rows)."""

from __future__ import annotations

from pydantic import Field, model_validator

from prequal.settings import DatabaseSettings, KafkaSettings, SessionSettings


class PublisherSettings(DatabaseSettings, SessionSettings, KafkaSettings):
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    # Rows claimed per transaction; large batches amortize the round trips.
    outbox_batch_size: int = Field(default=5000, ge=1, le=50_000)
    # Threads per instance, each publishing its share of the instance's lanes.
    outbox_workers: int = Field(default=2, ge=1, le=16)
    # Fallback wake-up when no NOTIFY arrives (and the pace of pure polling without LISTEN).
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0)
    # A worker claims at most once per this interval while rows keep arriving (publisher.py,
    # `_idle`): fewer, larger batches under load for at most this much latency; 0 turns it off.
    outbox_gather_seconds: float = Field(default=0.02, ge=0, le=1.0)
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
    # The lease session runs a query every rebalance interval, except while it waits for a
    # batch in flight (at most the delivery timeout + 5 s). Silent longer than this, the server
    # ends it and its lane locks go to the other instances (a partitioned or frozen instance).
    outbox_lease_idle_timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _lease_outlives_a_batch(self) -> PublisherSettings:
        longest_batch = (
            self.outbox_delivery_timeout_seconds + 5 + self.outbox_rebalance_interval_seconds
        )
        if self.outbox_lease_idle_timeout_seconds <= longest_batch:
            raise ValueError(
                "OUTBOX_LEASE_IDLE_TIMEOUT_SECONDS must exceed OUTBOX_DELIVERY_TIMEOUT_SECONDS "
                f"+ 5 + OUTBOX_REBALANCE_INTERVAL_SECONDS ({longest_batch:g}), or the lane locks "
                "could go while a batch is in flight"
            )
        return self

    service_name: str = "outbox-publisher"
