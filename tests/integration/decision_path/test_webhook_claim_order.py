"""Where the dispatcher's claim begins its walk over the endpoints (slots.CLAIM_SQL).

With more endpoints due than free workers, the walk starts at the first enabled endpoint whose
id is at or after `start` and goes round in id order; the dispatcher draws `start` at random
for every claim, so no endpoint is passed over claim after claim. An endpoint at its
concurrency limit is passed over without holding up the others. The statement runs as the
dispatcher runs it, against real PostgreSQL; no process and no HTTP is involved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from webhook_dispatcher.slots import CLAIM_SQL

LEASE = 35.0


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE webhook_endpoint_slots, webhook_deliveries, webhook_endpoints CASCADE"
        )
        yield connection


def _endpoint(conn: psycopg.Connection, n: int) -> uuid.UUID:
    endpoint_id = uuid.UUID(int=n)
    conn.execute(
        "INSERT INTO webhook_endpoints (id, client_id, url, secret) VALUES (%s, %s, %s, %s)",
        (endpoint_id, "client", "https://example.test/hook", "whsec_test"),
    )
    return endpoint_id


def _due(conn: psycopg.Connection, endpoint_id: uuid.UUID, seconds_ago: int = 1) -> uuid.UUID:
    delivery = uuid.uuid4()
    conn.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, application_id, payload, "
        "next_attempt_at) VALUES (%s, %s, %s, %s, '{}', now() - make_interval(secs => %s))",
        (delivery, endpoint_id, uuid.uuid4(), uuid.uuid4(), seconds_ago),
    )
    return delivery


def _claim(
    conn: psycopg.Connection, *, free: int, start: int, per_endpoint: int = 2
) -> list[uuid.UUID]:
    params = {"per_endpoint": per_endpoint, "free": free, "lease": LEASE}
    rows = conn.execute(CLAIM_SQL, {**params, "start": uuid.UUID(int=start)}).fetchall()
    return sorted(row[0] for row in rows)


def test_the_walk_begins_at_start_and_goes_round(conn: psycopg.Connection) -> None:
    deliveries = {n: _due(conn, _endpoint(conn, n)) for n in (10, 20, 30)}

    assert _claim(conn, free=1, start=20) == [deliveries[20]]
    assert _claim(conn, free=1, start=21) == [deliveries[30]]
    assert _claim(conn, free=1, start=31) == [deliveries[10]]  # past the last: round to the first


def test_each_endpoint_goes_first_for_some_start(conn: psycopg.Connection) -> None:
    """The old walk (storage order, no start) gave the same endpoint the only free worker on
    every claim while it had deliveries due; here each endpoint's turn comes."""
    endpoints = [_endpoint(conn, n) for n in (10, 20, 30)]
    for endpoint in endpoints:
        for _ in range(3):
            _due(conn, endpoint)
    claimed_endpoints = set()
    for start in (5, 15, 25):
        [delivery] = _claim(conn, free=1, start=start, per_endpoint=3)
        row = conn.execute(
            "SELECT endpoint_id FROM webhook_deliveries WHERE id = %s", (delivery,)
        ).fetchone()
        assert row is not None
        claimed_endpoints.add(row[0])
    assert claimed_endpoints == set(endpoints)


def test_an_endpoint_at_its_limit_does_not_hold_up_the_others(conn: psycopg.Connection) -> None:
    busy = _endpoint(conn, 1)
    first = [_due(conn, busy, 120) for _ in range(2)]
    assert _claim(conn, free=2, start=0) == sorted(first)  # both of its slots now held
    _due(conn, busy, 100)  # due longest, first in the walk, but its endpoint is full
    waiting = _due(conn, _endpoint(conn, 2), 10)

    assert _claim(conn, free=1, start=0) == [waiting]
