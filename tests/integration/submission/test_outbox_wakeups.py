"""The outbox trigger names the lanes it inserted, and the publisher wakes only their workers.

Against a real PostgreSQL migrated to head (migration 0014): a worker woken for another
worker's lanes would spend a claim transaction finding nothing.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from outbox_publisher.metrics import PublisherMetrics
from outbox_publisher.publisher import Publisher
from outbox_publisher.settings import PublisherSettings
from prequal import outbox
from prequal.events import APPLICATION_SUBMITTED

TOPIC = "wakeups"


def _app_in_lane(parity: int) -> uuid.UUID:
    """An application id whose lane is even (0) or odd (1)."""
    while True:
        app = uuid.uuid4()
        if outbox.lane_for(app) % 2 == parity:
            return app


def _row(app: uuid.UUID) -> outbox.OutboxRow:
    return outbox.OutboxRow.new(TOPIC, APPLICATION_SUBMITTED, app, "{}")


@pytest.fixture
def listening(database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
    try:
        yield conn  # type: ignore[misc]
    finally:
        conn.close()


def _payloads(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=2.0, stop_after=1)]


def test_an_insert_notifies_the_distinct_lanes_of_its_rows(
    database_url: str, listening: psycopg.Connection[tuple[object, ...]]
) -> None:
    apps = [uuid.uuid4() for _ in range(5)]
    rows = [_row(app) for app in apps] + [_row(apps[0])]  # two rows in one lane
    with psycopg.connect(database_url) as conn:
        conn.execute(outbox.INSERT_ROWS_SQL, (outbox.rows_param(rows),))
    (payload,) = _payloads(listening)
    assert sorted(int(lane) for lane in payload.split(",")) == sorted(
        {outbox.lane_for(app) for app in apps}
    )


def test_an_insert_of_no_rows_sends_no_notify(
    database_url: str, listening: psycopg.Connection[tuple[object, ...]]
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(outbox.INSERT_ROWS_SQL, (outbox.rows_param([]),))
    assert _payloads(listening) == []


def _publisher(database_url: str) -> Publisher:
    settings = PublisherSettings(
        database_url=database_url,  # type: ignore[arg-type]
        kafka_bootstrap_servers="127.0.0.1:9",  # never reached: no worker runs here
        outbox_workers=2,
    )
    return Publisher(
        settings,
        connect=lambda: psycopg.connect(database_url),
        producers=lambda _index: None,  # type: ignore[arg-type,return-value]
        metrics=PublisherMetrics(CollectorRegistry()),
    )


@pytest.mark.parametrize("parity", [0, 1])
def test_a_notify_wakes_only_the_worker_that_owns_the_lane(
    database_url: str, listening: psycopg.Connection[tuple[object, ...]], parity: int
) -> None:
    publisher = _publisher(database_url)
    with psycopg.connect(database_url) as conn:
        conn.execute(outbox.INSERT_SQL, _row(_app_in_lane(parity)).params())
    publisher._wait_for_notify(listening, 2.0)  # the wake-up step alone
    assert [event.is_set() for event in publisher._wake] == [
        parity == 0,
        parity == 1,
    ]


def test_a_notify_without_lanes_wakes_every_worker(
    database_url: str, listening: psycopg.Connection[tuple[object, ...]]
) -> None:
    publisher = _publisher(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"NOTIFY {outbox.NOTIFY_CHANNEL}")  # as the trigger before 0014 did
    publisher._wait_for_notify(listening, 2.0)
    assert all(event.is_set() for event in publisher._wake)
