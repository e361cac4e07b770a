"""The outbox publisher at a trickle: CPU and claim transactions per event at a modest rate.

`bench_publisher.py` drains a backlog, where every claim is full; at the rates the end-to-end
path runs (tens to a few hundred events/s), most claims carry one or two rows, and what a
wake-up costs decides the publisher's share. Here single-row outbox transactions (as the API,
credit-service and decision-service write them, each with its NOTIFY) arrive at `RATE`/s for
`SECONDS`; a durable PostgreSQL and one Kafka broker; the publisher is its console script with
its defaults (two workers). Figures: `trickle_claims_per_event` (the claim statements,
pg_stat_statements, empty ones included) and `trickle_cpu_ms_per_event_<publisher|postgres|
kafka>` (all backends, the broker's idle work included).

`BENCH_TRICKLE_BASE=<work tree with its own .venv>` runs that tree's publisher too, on its own
database migrated by its own `prequalctl`, alternating with this tree's `ROUNDS` times, and adds
the same figures prefixed `trickle_base_` (means over the rounds): a before/after in one run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from measure import CpuTime

from devstack.kafka import Kafka
from devstack.net import free_port
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from prequal import outbox
from prequal.events import APPLICATION_SUBMITTED
from prequal.kafka import create_topics

RATE = float(os.environ.get("BENCH_TRICKLE_RATE", "50"))
SECONDS = 20.0
ROUNDS = 4
TOPIC = "trickle"
PAYLOAD = '{"x": "%s"}' % ("A" * 400)  # about a submitted event's size


def _trickle(conn: psycopg.Connection[tuple[object, ...]], seconds: float) -> int:
    """Single-row outbox transactions at RATE/s (autocommit: each its own commit and NOTIFY)."""
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
        row = outbox.OutboxRow.new(TOPIC, APPLICATION_SUBMITTED, uuid.uuid4(), PAYLOAD)
        conn.execute(outbox.INSERT_SQL, row.params())
        sent += 1
    return sent


def _one_round(
    bin_dir: Path, url: str, postgres: Postgres, kafka: Kafka, log: Path
) -> dict[str, float]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "LOG_LEVEL": "WARNING",
        "METRICS_PORT": str(free_port()),
        "SECRETS_DIR": "/nonexistent",
    }
    publisher = ManagedProcess(
        "outbox-publisher", [str(bin_dir / "outbox-publisher")], log, env=env
    )
    publisher.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            time.sleep(5)  # lanes leased, producers connected
            _trickle(conn, 3)  # warm: prepared statements, producer connections
            time.sleep(1)
            conn.execute("SELECT pg_stat_statements_reset()")
            assert publisher.pid is not None
            assert postgres.process is not None
            assert kafka.process is not None
            cpu = CpuTime(
                {
                    "publisher": publisher.pid,
                    "postgres": postgres.process.pid or 0,
                    "kafka": kafka.process.pid or 0,
                }
            )
            sent = _trickle(conn, SECONDS)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                left = conn.execute("SELECT count(*) FROM outbox_events").fetchone()
                if left == (0,):
                    break
                time.sleep(0.2)
            spent = cpu.spent()
            claims = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                "WHERE query LIKE 'DELETE FROM outbox_events WHERE ctid%'"
            ).fetchone()
    finally:
        publisher.stop()
    assert claims is not None
    return {
        "trickle_claims_per_event": round(int(claims[0]) / sent, 3),
        **{
            f"trickle_cpu_ms_per_event_{name}": round(seconds * 1000 / sent, 3)
            for name, seconds in spent.items()
        },
    }


def _mean(rounds: list[dict[str, float]], prefix: str) -> dict[str, float]:
    return {
        prefix + key.removeprefix("trickle_"): round(statistics.mean(r[key] for r in rounds), 3)
        for key in rounds[0]
    }


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(
        workdir / "postgres" / "data",
        durable=True,
        settings={"shared_preload_libraries": "pg_stat_statements"},
    ).start()
    kafka = Kafka(workdir / "kafka" / "data", log_level="WARN").start()
    trees = {"trickle_": Path(sys.executable).parent}
    base = os.environ.get("BENCH_TRICKLE_BASE", "")
    if base:
        trees["trickle_base_"] = Path(base) / ".venv" / "bin"
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    try:
        create_topics(kafka.bootstrap, {TOPIC: 3})
        urls = {}
        for n, (name, bin_dir) in enumerate(trees.items()):
            urls[name] = postgres.create_database(f"trickle_{n}")
            subprocess.run(
                [str(bin_dir / "prequalctl"), "db", "upgrade"],
                env={**os.environ, "DATABASE_URL": urls[name]},
                check=True,
                capture_output=True,
            )
            with psycopg.connect(urls[name], autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for i in range(ROUNDS):
            order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
            for name, bin_dir in order:
                log = workdir / f"publisher-{name}{i}.log"
                rounds[name].append(_one_round(bin_dir, urls[name], postgres, kafka, log))
    finally:
        kafka.stop()
        postgres.stop()
    figures = {"trickle_rate_per_s": RATE}
    for name, measured in rounds.items():
        figures |= _mean(measured, name)
    return figures
