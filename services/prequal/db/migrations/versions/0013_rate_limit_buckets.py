"""Per-client rate limits shared by every API process (prequal_api.rate_limits).

One token bucket per (client, scope): its level and when it was last brought up to date. API
processes lease a few tokens at a time from it with one `INSERT … ON CONFLICT DO UPDATE`, so
the limit holds across replicas without a write per request. A row idle for long is a full
bucket, the same as no row: each API process deletes such rows periodically (the index on
`updated_at` keeps that cheap).

UNLOGGED: a lease writes no WAL, so its commit waits for no disk flush (on a durable server a
logged lease took 5-14 times as long as an unlogged one, bench/bench_rate_limits.py; the first
measurement, under a cold CI's load, gave 30 ms at the median and 430 ms at p99). The price:
after a crash of PostgreSQL, or on a standby promoted by a failover, the table is empty, and
every client starts again from a full bucket (one extra burst at most), which a rate limit can
afford.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE rate_limit_buckets (
            client_id text NOT NULL,
            scope text NOT NULL,
            tokens double precision NOT NULL,
            granted integer NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            CONSTRAINT pk_rate_limit_buckets PRIMARY KEY (client_id, scope)
        )
        """
    )
    op.execute("CREATE INDEX ix_rate_limit_buckets_updated ON rate_limit_buckets (updated_at)")


def downgrade() -> None:
    op.execute("DROP TABLE rate_limit_buckets")
