"""credit-service applies a batch of submissions with two statements, and exactly as one by one.

The handler is driven directly on a real PostgreSQL connection (no Kafka needed): the consumer
runtime hands the fast path's whole batch to `apply_batch`, and the careful path each record to
`apply`. Both must leave the same audit and outbox rows, in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from credit_service.handler import (
    CreditHandler,
    CreditMetrics,
    Keys,
    PersonalDataErasedError,
    ScoreApplication,
    decrypt_only,
)
from prequal.events import ApplicationSubmitted
from prequal.pan import Keyring
from tests.integration.decision_path.conftest import (
    SealingKeys,
    insert_application,
    insert_sealed_application,
    sealed_payload,
    submitted_payload,
)

REPORTS = "reports-batch"


class CountingConnection(psycopg.Connection[Any]):
    """Counts the statements sent through `execute` (what each costs a round trip)."""

    statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        return super().execute(*args, **kwargs)


def _handler(sealing_keys: SealingKeys, keyring: Keyring) -> CreditHandler:
    return CreditHandler(
        Keys(sealing_keys.opener, decrypt_only(keyring.keys)),
        REPORTS,
        CreditMetrics(CollectorRegistry()),
    )


def _command(payload: dict[str, Any]) -> ScoreApplication:
    return ScoreApplication(uuid.uuid4(), ApplicationSubmitted.model_validate(payload))


def _sealed(database_url: str, sealing_keys: SealingKeys) -> ScoreApplication:
    app, ciphertext = insert_sealed_application(database_url, sealing_keys.sealer)
    return _command(sealed_payload(app, ciphertext))


def _written(
    database_url: str, commands: list[ScoreApplication], work: Callable[[Any], object]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """The audit and outbox rows `work` wrote (in the order written) and its statements; the
    transaction is rolled back, so the same commands can be applied again."""
    ids = [c.application.application_id for c in commands]
    with CountingConnection.connect(database_url) as conn:
        work(conn)
        statements = conn.statements
        audits = conn.execute(
            "SELECT application_id, action, actor, key_id, detail, principal, request_id, "
            "event_id, purpose, outcome FROM audit_log WHERE application_id = ANY(%s) "
            "ORDER BY id",
            (ids,),
        ).fetchall()
        events = conn.execute(
            "SELECT id, aggregate_id, lane, topic, event_type, payload - 'generated_at' "
            "FROM outbox_events WHERE aggregate_id = ANY(%s) ORDER BY seq",
            (ids,),
        ).fetchall()
        conn.rollback()
    return audits, events, statements


def test_a_batch_leaves_the_same_rows_as_its_records_one_by_one(
    database_url: str, keyring: Keyring, sealing_keys: SealingKeys
) -> None:
    legacy = insert_application(database_url, keyring)
    twice = _sealed(database_url, sealing_keys)
    commands = [
        _sealed(database_url, sealing_keys),
        twice,
        _command(submitted_payload(legacy, keyring)),  # keyring format 0x01, no data key
        _sealed(database_url, sealing_keys),
        ScoreApplication(uuid.uuid4(), twice.application),  # the same application, re-sent
    ]
    handler = _handler(sealing_keys, keyring)

    audits, events, _ = _written(
        database_url, commands, lambda conn: [handler.apply(conn, c) for c in commands]
    )
    assert (audits, events) == _written(
        database_url, commands, lambda conn: handler.apply_batch(conn, commands)
    )[:2]
    assert [row[0] for row in audits] == [c.application.application_id for c in commands]
    assert {(row[1], row[3], row[9]) for row in audits} == {
        ("decrypt", "s1", "ok"),
        ("decrypt", "v2", "ok"),
    }
    assert [row[1] for row in events] == [c.application.application_id for c in commands]
    assert all(isinstance(row[5]["credit_score"], int) for row in events)


def test_a_batch_costs_two_statements_whatever_its_size(
    database_url: str, keyring: Keyring, sealing_keys: SealingKeys
) -> None:
    handler = _handler(sealing_keys, keyring)
    batch = [_sealed(database_url, sealing_keys) for _ in range(40)]

    audits, events, statements = _written(
        database_url, batch, lambda conn: handler.apply_batch(conn, batch)
    )

    assert statements == 2  # SELECT the sealed data keys, INSERT the audit and outbox rows
    assert (len(audits), len(events)) == (40, 40)


def test_an_erased_application_fails_the_batch_so_the_careful_path_takes_it(
    database_url: str, keyring: Keyring, sealing_keys: SealingKeys
) -> None:
    """The runtime gives a failed batch to its careful path, which dead-letters the record."""
    erased = _sealed(database_url, sealing_keys)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "DELETE FROM application_data_keys WHERE application_id = %s",
            (erased.application.application_id,),
        )
        conn.execute(
            "UPDATE applications SET personal_data_erased_at = now() WHERE id = %s",
            (erased.application.application_id,),
        )
    batch = [_sealed(database_url, sealing_keys), erased]
    handler = _handler(sealing_keys, keyring)

    with pytest.raises(PersonalDataErasedError, match="PERSONAL_DATA_ERASED"):
        _written(database_url, batch, lambda conn: handler.apply_batch(conn, batch))
