"""Per-endpoint concurrency slots shared by every webhook dispatcher (webhook_dispatcher.slots).

`WEBHOOK_ENDPOINT_CONCURRENCY` was a limit per dispatcher process: with N replicas a slow
endpoint saw up to N times the attempts its lender configured. Now an attempt holds one of the
endpoint's numbered slots, 0 to the limit - 1, as a row of this table keyed by (endpoint, slot):
the primary key lets one holder have a slot at a time, whichever process asks. The dispatcher
takes a slot in the statement that claims the delivery (`INSERT … ON CONFLICT DO UPDATE … WHERE
expires_at <= now()`: a free or expired slot) and gives it back in the statement that records
the attempt's outcome (its expiry set to `-infinity`), so it costs no statement of its own. A
slot's row, once made, stays (at most the limit's number per endpoint): taking and giving back
update only columns no index covers, so they are HOT updates (fillfactor 50 leaves them room
on the page).

A slot carries a lease (`expires_at`), the same as the delivery row's: a dispatcher that dies
mid-attempt leaves its slots behind, and they are free again when the lease ends. No foreign key
to `webhook_endpoints`: a deleted endpoint leaves at most its limit of rows here (a few dozen
bytes each, never read again), and a key would cost every claim a lookup and the API a cascade
grant.

UNLOGGED, as `rate_limit_buckets` (migration 0013): taking and giving back a slot writes no WAL.
After a crash of PostgreSQL, or on a promoted standby, the table is empty; the attempts in
flight then were in processes that lost their database too, and their deliveries come back
after their own (logged) leases, so at worst one lease's worth of attempts overlaps.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE UNLOGGED TABLE webhook_endpoint_slots (
            endpoint_id uuid NOT NULL,
            slot smallint NOT NULL,
            delivery_id uuid NOT NULL,
            expires_at timestamptz NOT NULL,
            CONSTRAINT pk_webhook_endpoint_slots PRIMARY KEY (endpoint_id, slot)
        ) WITH (fillfactor = 50)
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_endpoint_slots")
