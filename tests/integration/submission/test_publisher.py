"""The outbox publisher as a real process between real PostgreSQL and real Kafka."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.kafka import Kafka
from prequal import outbox, pan
from prequal.events import APPLICATION_SUBMITTED, ApplicationSubmitted
from prequal.kafka import create_topics
from prequalctl.keys import for_role
from tests import sealed
from tests.applications import application, synthetic_pan
from tests.integration.submission.conftest import (
    PublisherProcess,
    base_env,
    start_api,
    start_publisher,
)
from tests.kafka_reader import read_records
from tests.polling import wait_until
from tests.tokens import Oidc


def _insert_events(
    database_url: str, topic: str, apps: list[uuid.UUID], per_app: int
) -> list[uuid.UUID]:
    """Outbox rows as the API writes them; payload `n` numbers each application's events."""
    rows = [
        outbox.OutboxRow.new(
            topic, APPLICATION_SUBMITTED, app, json.dumps({"n": n, "app": str(app)})
        )
        for n in range(per_app)
        for app in apps
    ]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(outbox.INSERT_SQL, [r.params() for r in rows])
    return [r.id for r in rows]


def _unpublished(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
        ).fetchone()
    return int(row[0]) if row else -1


@pytest.fixture
def fresh_topic(kafka: Kafka) -> str:
    name = f"pub-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.connection(), {name: 3})
    return name


@pytest.fixture
def publisher(tmp_path: Path, publisher_env: dict[str, str]) -> Iterator[PublisherProcess]:
    """A publisher that keeps published rows (marked), so tests can read their event ids."""
    proc = start_publisher(tmp_path, publisher_env, OUTBOX_DELETE_PUBLISHED="false")
    try:
        yield proc
    finally:
        proc.process.stop()


def test_submitted_applications_arrive_keyed_with_cloudevents_headers_and_encrypted_pan(
    tmp_path: Path,
    *,
    kafka: Kafka,
    topic: str,
    database_url: str,
    pan_keys: dict[str, str],
    publisher: PublisherProcess,
    oidc: Oidc,
) -> None:
    api = start_api(
        tmp_path,
        base_env(
            DATABASE_URL=database_url,
            TOPIC_APPLICATIONS_SUBMITTED=topic,
            **for_role(pan_keys, "api"),
            **oidc.api_env(),
        ),
        token=oidc.token(),
    )
    try:
        pans = [synthetic_pan() for _ in range(5)]
        with api.client() as http:
            ids = [
                http.post("/applications", json=application(pan_number=p)).json()["application_id"]
                for p in pans
            ]
    finally:
        api.process.stop()
    records = read_records(kafka.connection(), topic, until=5, timeout=30)
    assert sorted((r.key or b"").decode() for r in records) == sorted(ids)
    with psycopg.connect(database_url) as conn:
        event_ids: dict[str, str] = dict(
            conn.execute(
                "SELECT aggregate_id::text, id::text FROM outbox_events "
                "WHERE published_at IS NOT NULL"
            ).fetchall()
        )
    for record in records:
        key, value = (record.key or b"").decode(), record.value or b""
        assert record.header("ce_specversion") == "1.0"
        assert record.header("ce_type") == "loan.application.submitted.v1"
        assert record.header("ce_source") == "/prequal/api"
        assert record.header("content-type") == "application/json"
        assert record.header("ce_id") == event_ids[key]
        assert str(record.header("ce_time")).endswith("Z")
        payload = ApplicationSubmitted.model_validate_json(value)
        assert str(payload.application_id) == key
        app_id = payload.application_id
        data_key = sealed.data_key(pan_keys, database_url, app_id)
        plain = sealed.open_pan(data_key, pan.from_transport(payload.pan_encrypted), app_id)
        assert plain == pans[ids.index(key)]
        assert plain.encode() not in value
    metrics = httpx.get(publisher.metrics_url).text
    assert f'prequal_outbox_published_records_total{{topic="{topic}"}} 5.0' in metrics
    assert "prequal_outbox_backlog 0.0" in metrics
    assert "prequal_outbox_oldest_unpublished_age_seconds 0.0" in metrics  # same query


def test_events_of_one_application_keep_their_order_with_two_publishers(
    tmp_path: Path, kafka: Kafka, database_url: str, publisher_env: dict[str, str], fresh_topic: str
) -> None:
    first = start_publisher(tmp_path, publisher_env, "publisher-a", OUTBOX_BATCH_SIZE="50")
    second = start_publisher(tmp_path, publisher_env, "publisher-b", OUTBOX_BATCH_SIZE="50")
    try:
        wait_until(
            lambda: (
                "prequal_outbox_lanes_owned 32.0" in httpx.get(second.metrics_url).text
                and "prequal_outbox_lanes_owned 32.0" in httpx.get(first.metrics_url).text
            ),
            timeout=20,
            interval=0.2,
            what="the two publishers to split the 64 lanes",
        )
        apps = [uuid.uuid4() for _ in range(40)]
        _insert_events(database_url, fresh_topic, apps, per_app=25)
        records = read_records(kafka.connection(), fresh_topic, until=1000, timeout=60)
    finally:
        first.process.stop()
        second.process.stop()
    sequences: dict[str, list[int]] = defaultdict(list)
    for record in records:
        sequences[(record.key or b"").decode()].append(json.loads(record.value or b"")["n"])
    assert len(records) == 1000
    assert sequences == {str(app): list(range(25)) for app in apps}


def test_kafka_down_keeps_the_backlog_in_postgres_and_drains_after_restart(
    tmp_path: Path, private_kafka: Kafka, database_url: str, publisher_env: dict[str, str]
) -> None:
    # The broker stopped here is this module's own: a restart that failed would not take the
    # session's broker, and every later test, with it.
    topic = f"pub-{uuid.uuid4().hex[:8]}"
    create_topics(private_kafka.connection(), {topic: 3})
    env = {**publisher_env, **private_kafka.environment()}
    proc = start_publisher(tmp_path, env, OUTBOX_DELIVERY_TIMEOUT_SECONDS="3")
    private_kafka.stop()
    try:
        ids = _insert_events(database_url, topic, [uuid.uuid4() for _ in range(50)], 2)
        wait_until(
            lambda: "prequal_outbox_circuit_open 1.0" in httpx.get(proc.metrics_url).text,
            timeout=30,
            interval=0.2,
            what="a failed batch to open the publisher's circuit",
        )
        assert proc.process.alive()
        assert _unpublished(database_url) == 100
    finally:
        private_kafka.start()
    try:
        records = read_records(private_kafka.connection(), topic, until=100, timeout=90, settle=1)
        wait_until(
            lambda: _unpublished(database_url) == 0,
            timeout=30,
            interval=0.2,
            what="the outbox to be marked published",
        )
    finally:
        proc.process.stop()
    assert {r.header("ce_id") for r in records} == {str(i) for i in ids}


def test_publisher_killed_mid_batch_loses_nothing_and_resends_with_the_same_ce_id(
    tmp_path: Path, kafka: Kafka, database_url: str, publisher_env: dict[str, str], fresh_topic: str
) -> None:
    # Flushing per record makes a batch slow enough to be caught with records in flight, and
    # enough rows keep the victim busy for seconds even on an idle machine (a fraction of a
    # millisecond per record there).
    ids = _insert_events(database_url, fresh_topic, [uuid.uuid4() for _ in range(1500)], 4)
    slow = {"OUTBOX_BATCH_SIZE": "200", "OUTBOX_FLUSH_PER_RECORD": "true"}
    victim = start_publisher(tmp_path, publisher_env, "victim", **slow)

    def published() -> int:
        return len(ids) - _unpublished(database_url)

    deadline = time.monotonic() + 60
    while published() < 200:  # the first batch is confirmed and marked
        assert time.monotonic() < deadline, "the first batch was never marked"
        time.sleep(0.01)
    time.sleep(0.1)  # into the next batch: some of its records are already in Kafka
    victim.process.kill()
    assert published() < len(ids)
    survivor = start_publisher(tmp_path, publisher_env, "survivor")
    try:
        wait_until(
            lambda: _unpublished(database_url) == 0,
            timeout=60,
            interval=0.2,
            what="the survivor to drain the outbox",
        )
        records = read_records(
            kafka.connection(), fresh_topic, until=len(ids), timeout=60, settle=2
        )
    finally:
        survivor.process.stop()
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for record in records:
        by_id[record.header("ce_id")].add(record.value)
    assert set(by_id) == {str(i) for i in ids}
    assert len(records) > len(ids), "the killed batch's delivered records were sent again"
    assert all(len(values) == 1 for values in by_id.values())


def test_sigterm_stops_the_publisher_cleanly(tmp_path: Path, publisher_env: dict[str, str]) -> None:
    proc = start_publisher(tmp_path, publisher_env, "graceful")
    proc.process.stop(timeout=15)
    assert not proc.process.alive()
    assert proc.process._proc is not None
    assert proc.process._proc.returncode == 0
    log = proc.process.log_path.read_text()
    assert '"message": "stopped;' in log
    for line in log.splitlines():
        json.loads(line)  # every log line is JSON


def test_a_surviving_publisher_takes_over_the_lanes_of_a_killed_one(
    tmp_path: Path, kafka: Kafka, database_url: str, publisher_env: dict[str, str], fresh_topic: str
) -> None:
    doomed = start_publisher(tmp_path, publisher_env, "doomed")
    survivor = start_publisher(tmp_path, publisher_env, "heir")
    try:
        wait_until(
            lambda: "prequal_outbox_lanes_owned 32.0" in httpx.get(survivor.metrics_url).text,
            timeout=20,
            interval=0.2,
            what="the two publishers to split the lanes",
        )
        doomed.process.kill()
        wait_until(
            lambda: "prequal_outbox_lanes_owned 64.0" in httpx.get(survivor.metrics_url).text,
            timeout=20,
            interval=0.2,
            what="the survivor to take every lane",
        )
        ids = _insert_events(database_url, fresh_topic, [uuid.uuid4() for _ in range(64)], 2)
        records = read_records(kafka.connection(), fresh_topic, until=len(ids), timeout=60)
    finally:
        survivor.process.stop()
    assert {r.header("ce_id") for r in records} == {str(i) for i in ids}
