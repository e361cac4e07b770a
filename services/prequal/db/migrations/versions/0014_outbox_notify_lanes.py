"""The outbox NOTIFY names the lanes it is about, so the publisher wakes only their worker.

The statement-level trigger of migration 0001 sent `NOTIFY outbox_events, ''`, and the
publisher woke every worker for it; with two workers each owning half the lanes, the other one
then claimed nothing in a transaction of its own (BEGIN, the claim's DELETE, COMMIT) for every
single-row insert. The payload is now the distinct lanes of the statement's rows, comma
separated (at most 64 numbers, far under NOTIFY's 8,000 bytes), read from the statement's
transition table; an INSERT of no rows sends nothing. A publisher that does not read the
payload still wakes on it, and one that does treats an empty or unreadable payload as "wake
everyone" (outbox_publisher.wakeups), so either side can be upgraded first.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION outbox_events_notify_lanes() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            v_lanes text;
        BEGIN
            SELECT string_agg(DISTINCT lane::text, ',') INTO v_lanes FROM inserted;
            IF v_lanes IS NOT NULL THEN
                PERFORM pg_notify('outbox_events', v_lanes);
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
        "REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify_lanes()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify()"
    )
    op.execute("DROP FUNCTION outbox_events_notify_lanes()")
