"""Dead letters recorded in PostgreSQL: on the application, and once per event and group.

A dead-letter topic keeps its records for a limited time; an application nobody replayed must
not then sit PENDING with no reason anywhere. `applications.processing_issue_*` carries the
reason of its latest dead letter until the application reaches a final status (a replay that
succeeded), and the API shows it as `processing_issue`. `dead_letters` has one row per
(consumer group, event id, replay): a consumer that finds its record there after a crash or a
retried batch does not write the dead letter a second time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE applications ADD COLUMN processing_issue_code text, "
        "ADD COLUMN processing_issue_message text, "
        "ADD COLUMN processing_issue_since timestamptz"
    )
    op.execute(
        """
        CREATE TABLE dead_letters (
            consumer_group text NOT NULL,
            event_id uuid NOT NULL,
            replay_of text NOT NULL DEFAULT '',
            application_id uuid,
            error_class text NOT NULL,
            dead_lettered_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_dead_letters PRIMARY KEY (consumer_group, event_id, replay_of)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE dead_letters")
    op.execute(
        "ALTER TABLE applications DROP COLUMN processing_issue_code, "
        "DROP COLUMN processing_issue_message, DROP COLUMN processing_issue_since"
    )
