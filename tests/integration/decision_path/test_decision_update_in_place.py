"""A decision batch updates its applications in place (HOT): the page keeps room for it.

The API fills `applications` pages to the table's fillfactor; decision-service then updates
several rows of one page in one transaction. Each new row version needs room on the row's own
page until the commit, or it moves to another page and every index of the table gets a new
entry (migration 0016). Rows are written as the API writes them since migration 0007 (sealed);
the batch is the one decision-service's runtime hands to `apply_batch`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from prometheus_client import CollectorRegistry

from decision_service.handler import DecideApplication, DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy
from prequal.events import CreditReportGenerated
from tests.integration.decision_path.conftest import SealingKeys, insert_sealed_application

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
BATCH = 5  # what one poll brings decision-service at about 100 applications/s (e2e bench)


def _block(conn: psycopg.Connection[tuple[object, ...]], application_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT (ctid::text::point)[0]::int FROM applications WHERE id = %s", (application_id,)
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_batch_of_decisions_on_one_full_page_stays_on_that_page(
    database_url: str, sealing_keys: SealingKeys
) -> None:
    # Fill the first page as the API does, one submission after the other, until a row
    # lands on the second one.
    first_page: list[uuid.UUID] = []
    with psycopg.connect(database_url) as conn:
        for _ in range(200):
            app, _ciphertext = insert_sealed_application(database_url, sealing_keys.sealer)
            if _block(conn, app.id) > 0:
                break
            first_page.append(app.id)
    assert len(first_page) >= BATCH

    decided = first_page[:BATCH]
    handler = DecisionHandler(DecisionPolicy(), DecisionMetrics(CollectorRegistry()))
    with psycopg.connect(database_url) as conn, conn.transaction():
        handler.apply_batch(
            conn,
            [
                DecideApplication(
                    CreditReportGenerated(
                        application_id=application_id,
                        credit_score=780,
                        monthly_income=Decimal(85_000),
                        requested_amount=Decimal(500_000),
                        loan_type="PERSONAL",
                        generated_at=NOW,
                    )
                )
                for application_id in decided
            ],
        )
        hot = conn.execute("SELECT pg_stat_get_xact_tuples_hot_updated('applications'::regclass)")
        hot_updates = hot.fetchone()

    with psycopg.connect(database_url) as conn:
        statuses = conn.execute(
            "SELECT status FROM applications WHERE id = ANY(%s)", (decided,)
        ).fetchall()
        blocks = [_block(conn, application_id) for application_id in decided]
    assert {status for (status,) in statuses} == {"PRE_APPROVED"}
    assert blocks == [0] * BATCH, "an updated row moved off its full page"
    assert hot_updates == (BATCH,)
