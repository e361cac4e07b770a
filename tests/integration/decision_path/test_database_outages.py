"""A database that answers but refuses the work is an outage, never the record's fault.

The faults are the real server's own errors: a read-only database (what a failover to a
standby looks like) and a statement timeout behind a row another session holds. Each test
has its own database (module-scoped), so `ALTER DATABASE` reaches no other test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from prequal import dlq, events
from tests.polling import wait_until

from .conftest import (
    GROUP_DECISION,
    RunningConsumer,
    World,
    application_status,
    insert_application,
    report_payload,
)


def _sample(consumer: RunningConsumer, topic: str, outcome: str) -> float:
    return consumer.sample(
        "consumer_records_total", topic=topic, group=GROUP_DECISION, outcome=outcome
    )


def _set_for_new_sessions(database_url: str, setting: str, value: str | None) -> None:
    """ALTER DATABASE … SET, then end every other session so each reconnects under it."""
    admin = "-c default_transaction_read_only=off -c statement_timeout=0"
    with psycopg.connect(database_url, autocommit=True, options=admin) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        db = sql.Identifier(name[0])
        if value is None:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(db, sql.Identifier(setting)))
        else:
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    db, sql.Identifier(setting), sql.Literal(value)
                )
            )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@contextmanager
def _read_only(database_url: str) -> Iterator[None]:
    _set_for_new_sessions(database_url, "default_transaction_read_only", "on")
    try:
        yield
    finally:
        _set_for_new_sessions(database_url, "default_transaction_read_only", None)


@contextmanager
def _row_held_with_statement_timeout(
    database_url: str, application_id: uuid.UUID
) -> Iterator[None]:
    """Another session holds the application's row; every new session has a 200 ms timeout."""
    _set_for_new_sessions(database_url, "statement_timeout", "200ms")
    holder = psycopg.connect(database_url, options="-c statement_timeout=0")
    try:
        holder.execute("SELECT 1 FROM applications WHERE id = %s FOR UPDATE", (application_id,))
        yield
    finally:
        holder.close()
        _set_for_new_sessions(database_url, "statement_timeout", None)


@pytest.mark.parametrize("fault", ["read_only", "statement_timeout"])
def test_a_database_refusing_work_holds_records_without_dead_lettering_them(
    world: World, fault: str
) -> None:
    database_url, topics = world.database_url, world.topics
    app = insert_application(database_url, world.keyring)
    decision = world.consumers.decision(topics)
    warm = insert_application(database_url, world.keyring)
    world.producer.event(
        topics.reports, events.CREDIT_REPORT_GENERATED, report_payload(warm, 700), key=str(warm.id)
    )
    wait_until(lambda: application_status(database_url, warm.id) == "PRE_APPROVED")
    dead_letters = dlq.dlq_topic(topics.reports)
    fault_on = (
        _read_only(database_url)
        if fault == "read_only"
        else _row_held_with_statement_timeout(database_url, app.id)
    )
    with fault_on:
        world.producer.event(
            topics.reports,
            events.CREDIT_REPORT_GENERATED,
            report_payload(app, 700),
            key=str(app.id),
        )
        # A record blamed for the fault is dead-lettered after its third attempt; an outage
        # retries it for as long as the fault lasts. Past three tries, the verdict is in.
        wait_until(
            lambda: (
                decision.sample("dlq_records_total", topic=dead_letters) > 0
                or _sample(decision, topics.reports, "retried") >= 4
            )
        )
        assert decision.sample("dlq_records_total", topic=dead_letters) == 0
    wait_until(lambda: application_status(database_url, app.id) == "PRE_APPROVED")
    assert decision.sample("dlq_records_total", topic=dead_letters) == 0
