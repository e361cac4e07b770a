"""Outbox publisher throughput: drain 100,000 pre-filled rows, beside the dev log's settings.

Both runs use the same `outbox-publisher` console script as a real process against devstack's
PostgreSQL (durable: fsync on) and Kafka; only the configuration differs. Each publisher starts
on an empty outbox and, once it holds its lanes, 100,000 rows arrive in one committed COPY (as
a backlog left by an outage would appear); the clock runs from that commit until the outbox is
empty. Process start-up is thus not counted, backlog pick-up (NOTIFY or polling) is. The
baseline (poll every 100 ms, batches of 10, a flush per record, no LISTEN) is far too slow to
drain 100,000 rows in a benchmark, so it runs for a fixed time and its rate is reported.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition
from measure import PeakRss

from devstack.kafka import Kafka
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from prequal import events, outbox
from prequal.db import migrate
from prequal.kafka import create_topics
from prequal.kafka_acl import PUBLISHER, Grant
from prequal.kafka_security import KafkaConnection

ROWS = 100_000
PARTITIONS = 3
BASELINE_SECONDS = 15.0
BASELINE = {
    "OUTBOX_BATCH_SIZE": "10",
    "OUTBOX_POLL_INTERVAL_SECONDS": "0.1",
    "OUTBOX_LISTEN": "false",
    "OUTBOX_FLUSH_PER_RECORD": "true",
    "OUTBOX_WORKERS": "1",
}


def _prefill(url: str, topic: str, rows: int) -> None:
    """Rows shaped like the API's: an encrypted-PAN-sized payload per application."""
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY outbox_events (id, aggregate_id, lane, topic, event_type, payload) FROM STDIN"
        ) as copy:
            for _ in range(rows):
                app = uuid.uuid4()
                payload = {
                    "application_id": str(app),
                    "pan_encrypted": "AQJ2MQ" + "x" * 50,
                    "monthly_income": "85000.00",
                    "requested_amount": "500000.00",
                    "loan_type": "PERSONAL",
                    "submitted_at": now,
                }
                copy.write_row(
                    (
                        uuid.uuid4(),
                        app,
                        outbox.lane_for(app),
                        topic,
                        events.APPLICATION_SUBMITTED,
                        json.dumps(payload),
                    )
                )
        conn.commit()


def _unpublished(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox_events WHERE published_at IS NULL"
        ).fetchone()
    return int(row[0]) if row else 0


def _records_in(connection: KafkaConnection, topic: str) -> int:
    consumer = Consumer({**connection.config(), "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
    finally:
        consumer.close()


def _publisher(workdir: Path, name: str, env: dict[str, str]) -> ManagedProcess:
    """A started publisher that holds all 64 lanes (so it is past its start-up)."""
    port = free_port()
    process = ManagedProcess(
        name,
        [str(Path(sys.executable).parent / "outbox-publisher")],
        workdir / f"{name}.log",
        env={**env, "METRICS_PORT": str(port), "LOG_LEVEL": "WARNING"},
    )
    process.start()
    metrics = f"http://{LOOPBACK}:{port}/metrics"
    process.wait_ready(lambda: http_ok(metrics, expect=b"prequal_outbox_lanes_owned 64.0"), 30)
    time.sleep(1.0)  # the idempotent producer fetches its producer id in the background
    return process


def _run_one(
    workdir: Path, postgres: Postgres, kafka: Kafka, name: str, settings: dict[str, str]
) -> tuple[float, float, int]:
    """Events/s, peak RSS (MB) and records found in Kafka for one publisher configuration."""
    url = postgres.create_database(f"bench_{name}")
    migrate.upgrade(url)
    topic = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    create_topics(kafka.connection(), {topic: PARTITIONS})
    kafka.grant([Grant(PUBLISHER, "TOPIC", topic, "WRITE")])  # what the publisher may, only
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SECRETS_DIR": "/nonexistent",
        "DATABASE_URL": url,
        **kafka.environment(PUBLISHER),
        "TOPIC_APPLICATIONS_SUBMITTED": topic,
        **settings,
    }
    process = _publisher(workdir, name, env)
    assert process.pid is not None
    rss = PeakRss({"publisher": process.pid})
    try:
        _prefill(url, topic, ROWS)
        started = time.monotonic()
        limit = BASELINE_SECONDS if settings is BASELINE else 300.0
        while time.monotonic() - started < limit and _unpublished(url):
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        published = ROWS - _unpublished(url)
    finally:
        peak = rss.stop()["publisher"]
        process.stop()
    return published / elapsed, peak, _records_in(kafka.connection(), topic)


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    kafka = Kafka(
        workdir / "kafka" / "data",
        log_level="WARN",
        security="PLAINTEXT" if os.environ.get("BENCH_KAFKA_PLAINTEXT") else "SASL_SSL",
    ).start()
    try:
        rate, peak, in_kafka = _run_one(workdir, postgres, kafka, "fast", {})
        if in_kafka < ROWS:
            raise RuntimeError(f"only {in_kafka} of {ROWS} records reached Kafka")
        base_rate, _, _ = _run_one(workdir, postgres, kafka, "baseline", BASELINE)
    finally:
        kafka.stop()
        postgres.stop()
    return {
        "publisher_events_per_s": round(rate, 1),
        "publisher_baseline_events_per_s": round(base_rate, 1),
        "publisher_speedup": round(rate / base_rate, 1) if base_rate else 0.0,
        "publisher_peak_rss_mb": round(peak, 1),
    }
