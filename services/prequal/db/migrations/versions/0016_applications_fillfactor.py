"""Leave room on each `applications` page for the row's one decision update.

Every application row is written once by the API and updated once by decision-service
(PENDING → final status, a few hundred milliseconds later). With the default fillfactor of 100
the API packs each page full, so when the decision arrives the new row version often finds no
room on its page: the update then goes to another page (found through the free space map or by
extending the table) and inserts a new entry into every index of the table. That was 13 % of
the updates in the e2e benchmark, and the batch UPDATE was 75 % of PostgreSQL's CPU per
decision in a 5-report-batch run of `make bench BENCH=decisions` (docs/benchmarks.md). With a
quarter of each page kept free, the updates stay on their page as heap-only tuples (HOT): no
index entries, less WAL, and the page prunes the old versions itself. A quarter, not less: one
decision batch updates applications submitted one after the other, often several on the same
page in one transaction, and each needs room for its new version until the commit (85 % left
the UPDATE at two thirds of its cost in the same run, 75 % at an eighth). The table grows by a
third for it.

Only new pages are affected; existing pages keep their layout until they are rewritten.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE applications SET (fillfactor = 75)")


def downgrade() -> None:
    op.execute("ALTER TABLE applications RESET (fillfactor)")
