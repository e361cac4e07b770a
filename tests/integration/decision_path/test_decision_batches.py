"""decision-service applies a batch of reports with three statements, and exactly as one by one.

The handler is driven directly on a real PostgreSQL connection (no Kafka needed): the consumer
runtime hands the fast path's whole batch to `apply_batch`, and the careful path each record to
`apply`. Both must leave the same rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from decision_service.handler import DecideApplication, DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy, ManualReviewOffer
from prequal.events import CreditReportGenerated
from prequal.pan import Keyring
from tests.integration.decision_path.conftest import Application, insert_application

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
CHALLENGER = DecisionPolicy(
    min_credit_score=700, manual_review_offer=ManualReviewOffer(enabled=True)
)


class CountingCursor(psycopg.Cursor[Any]):
    """Counts every statement its connection sends, `executemany`'s one per parameter set
    included (pipelined, but each still parsed and executed by the server)."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        assert isinstance(self.connection, CountingConnection)
        self.connection.statements += 1
        return super().execute(*args, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
        assert isinstance(self.connection, CountingConnection)
        params = list(params_seq)
        self.connection.statements += len(params)
        super().executemany(query, params, **kwargs)


class CountingConnection(psycopg.Connection[Any]):
    """Counts the statements sent through its cursors (`Connection.execute` uses one too)."""

    statements = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = CountingCursor


def _handler(registry: CollectorRegistry | None = None) -> DecisionHandler:
    return DecisionHandler(
        DecisionPolicy(),
        DecisionMetrics(registry or CollectorRegistry()),
        clock=lambda: NOW,
        challenger=CHALLENGER,
    )


def _command(app: Application, score: int) -> DecideApplication:
    return DecideApplication(
        CreditReportGenerated(
            application_id=app.id,
            credit_score=score,
            monthly_income=app.monthly_income,
            requested_amount=app.requested_amount,
            loan_type="PERSONAL",
            generated_at=NOW,
        )
    )


def _mixed(database_url: str, keyring: Keyring) -> list[DecideApplication]:
    """Approvals (one above the policy's maximum), reviews, rejections, a recent application
    elsewhere and an application that is already final."""

    def app(income: int, amount: int, **kwargs: Any) -> Application:
        return insert_application(
            database_url,
            keyring,
            monthly_income=Decimal(income),
            requested_amount=Decimal(amount),
            **kwargs,
        )

    commands = [
        _command(app(85_000, 500_000), 790),
        _command(app(85_000, 500_000), 720),
        _command(app(400_000, 9_999_999), 760),
        _command(app(10_000, 480_000), 700),
        _command(app(10_000, 480_000), 660),
        _command(app(85_000, 500_000), 610),
        _command(app(85_000, 500_000, recent_application_elsewhere=True), 790),
    ]
    final = app(85_000, 500_000)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE applications SET status = 'REJECTED', version = 2 WHERE id = %s", (final.id,)
        )
    return [*commands, _command(final, 800)]


def _rows(database_url: str, ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    """Everything the decisions wrote, per application in order, without the ids."""
    with psycopg.connect(database_url) as conn:
        rows = []
        for application_id in ids:
            rows.append(
                conn.execute(
                    "SELECT a.status, a.credit_score, a.decision_reason, a.max_approved_amount, "
                    "a.version, to_jsonb(d) - 'application_id', to_jsonb(s) - 'application_id' "
                    "FROM applications a LEFT JOIN decisions d ON d.application_id = a.id "
                    "LEFT JOIN shadow_decisions s ON s.application_id = a.id WHERE a.id = %s",
                    (application_id,),
                ).fetchone()
            )
    return rows


def _run(database_url: str, work: Callable[[psycopg.Connection[Any]], object]) -> int:
    """`work` in one transaction; the statements it sent."""
    with CountingConnection.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            work(conn)
        return conn.statements


def test_a_batch_leaves_the_same_rows_as_its_reports_one_by_one(
    database_url: str, keyring: Keyring
) -> None:
    one_by_one, batched = _mixed(database_url, keyring), _mixed(database_url, keyring)
    handler = _handler()
    _run(database_url, lambda conn: [handler.apply(conn, c) for c in one_by_one])
    _run(database_url, lambda conn: handler.apply_batch(conn, batched))

    expected = _rows(database_url, [c.report.application_id for c in one_by_one])
    assert _rows(database_url, [c.report.application_id for c in batched]) == expected
    statuses = [row[0] for row in expected]
    assert statuses == [
        "PRE_APPROVED",
        "PRE_APPROVED",
        "PRE_APPROVED",
        "MANUAL_REVIEW",
        "MANUAL_REVIEW",
        "REJECTED",
        "REJECTED",
        "REJECTED",
    ]
    assert all(row[5] is not None and row[6] is not None for row in expected[:-1])
    assert expected[-1][4:] == (2, None, None)  # already final: left as it was


def test_a_batch_costs_four_statements_whatever_its_size(
    database_url: str, keyring: Keyring
) -> None:
    handler = _handler()
    first = [_command(insert_application(database_url, keyring), 720)]
    committed: list[Any] = []
    _run(database_url, lambda conn: committed.extend(handler.apply_batch(conn, first)))
    for then in committed:
        then()  # as the runtime does after the commit: the policies are known to be stored

    batch = [_command(insert_application(database_url, keyring), 720) for _ in range(40)]
    statements = _run(database_url, lambda conn: handler.apply_batch(conn, batch))

    # SELECT the rows, UPDATE them, INSERT decisions and shadows, INSERT the decided events
    assert statements == 4
    assert {row[0] for row in _rows(database_url, [c.report.application_id for c in batch])} == {
        "PRE_APPROVED"
    }


def test_one_application_twice_in_a_batch_is_decided_once(
    database_url: str, keyring: Keyring
) -> None:
    registry = CollectorRegistry()
    handler = _handler(registry)
    app = insert_application(database_url, keyring)
    batch = [_command(app, 610), _command(app, 790)]
    done: list[Any] = []
    _run(database_url, lambda conn: done.extend(handler.apply_batch(conn, batch)))
    for then in done:
        then()

    row = _rows(database_url, [app.id])[0]
    assert (row[0], row[1], row[4]) == ("REJECTED", 610, 2)  # the first report decided
    assert registry.get_sample_value("decision_already_final_total") == 1
