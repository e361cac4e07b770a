"""The cost of a decision's webhook: the decided event and its dispatch, end to end.

What one decision adds beyond deciding: its `loan.application.decided.v1` outbox row (written
by decision-service in its transaction, here by the driver exactly as `write_decided_events`
writes it), the outbox publisher's produce, and the webhook dispatcher's consume, park, open
of the sealed signing secret, one DNS-free resolve and check (a literal loopback address,
allowed as `make run` allows it), the signed POST and the `DELIVERED` update. Co-located as in
`make run`: durable PostgreSQL, Kafka, outbox-publisher and webhook-dispatcher from their
console scripts; a loopback receiver (answers 204) in the driver's process.

Eight clients with one endpoint each (the dispatcher runs at most two attempts per endpoint at
once, so one endpoint alone would measure that limit); each decision belongs to one of them.

- throughput: 5,000 decided events written in transactions of 50 as fast as the driver can;
  `webhook_deliveries_per_s` is 5,000 over the time from the first write to the last
  `delivered_at`; `webhook_cpu_ms_per_decision_*` is the CPU each process spent per decision
  (`_total` without the driver and receiver);
- latency: 100 decisions/s for 10 s; `webhook_p50/p99_ms` from the decision's `decided_at`
  (when the driver wrote its outbox row) to its delivery's `delivered_at`;
- `webhook_open_secret_us` / `webhook_seal_secret_us`: CPU per HPKE open (dispatcher, every
  attempt) and seal (API, once per endpoint) with the default hybrid suite, in process.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from measure import CpuTime, PeakRss

from devstack.kafka import Kafka
from devstack.postgres import Postgres
from devstack.services import DISPATCHER, PUBLISHER, Services, migrate
from prequal import sealing, webhooks
from prequal.dlq import dlq_topic
from prequal.events import APPLICATION_DECIDED, format_time
from prequal.kafka import create_topics
from prequal.kafka_acl import PipelineTopics, pipeline_grants
from prequal.outbox import INSERT_SQL, NOTIFY_CHANNEL, OutboxRow
from prequal.webhook_secrets import open_secret, seal_secret
from prequalctl.keys import generate_keys

TOPIC = "loan_applications_decided"
CLIENTS = 8
WARMUP = 500
THROUGHPUT = 5_000
BATCH = 50
RATE = 100
RATE_SECONDS = 10
PARTITIONS = 3
ROUNDS = 500


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # The dispatcher opens a connection per attempt (to the address it checked); with the
    # standard library's backlog of 5 a burst of them overflowed the listen queue and each
    # dropped SYN came back a second later: 8-12 per run, the p99's 1 s outliers.
    request_queue_size = 128


@contextmanager
def _receiver() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _register(url: str, keys: dict[str, str], port: int) -> None:
    sealer = sealing.Sealer(
        sealing.parse_key_list(keys["WEBHOOK_SEALING_PUBLIC_KEYS"], "WEBHOOK_SEALING_PUBLIC_KEYS"),
        keys["WEBHOOK_SEALING_ACTIVE_KEY_ID"],
    )
    with psycopg.connect(url) as conn:
        for client in range(CLIENTS):
            endpoint_id = uuid.uuid4()
            conn.execute(
                webhooks.INSERT_ENDPOINT_SQL,
                (
                    endpoint_id,
                    f"client-{client}",
                    f"http://127.0.0.1:{port}/hooks/{client}",
                    seal_secret(sealer, webhooks.new_secret(), endpoint_id),
                ),
            )


def _decide(url: str, count: int, offset: int) -> None:
    """`count` decided events in transactions of BATCH, as decision-service writes them."""
    with psycopg.connect(url) as conn:
        for start in range(0, count, BATCH):
            params = []
            for i in range(start, min(start + BATCH, count)):
                application_id = uuid.uuid4()
                payload = {
                    "application_id": str(application_id),
                    "client_id": f"client-{(offset + i) % CLIENTS}",
                    "status": "REJECTED",
                    "reason_codes": ["CREDIT_SCORE_BELOW_MINIMUM"],
                    "offer": None,
                    "policy_version": "0123456789abcdef",
                    "decided_at": format_time(datetime.now(UTC)),
                }
                row = OutboxRow.new(TOPIC, APPLICATION_DECIDED, application_id, json.dumps(payload))
                params.append(row.params())
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(INSERT_SQL, params)
                cursor.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


def _delivered(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'"
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_delivered(url: str, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _delivered(url) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_delivered(url)} of {total} deliveries after {timeout}s")
        time.sleep(0.2)


def _latencies_ms(url: str, since: datetime) -> list[float]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM d.delivered_at - decided) * 1000 FROM ("
            "  SELECT delivered_at, (payload -> 'data' ->> 'decided_at')::timestamptz AS decided"
            "  FROM webhook_deliveries) d WHERE decided >= %s",
            (since,),
        ).fetchall()
    return sorted(float(r[0]) for r in rows)


def _percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _crypto_us(keys: dict[str, str]) -> dict[str, float]:
    sealer = sealing.Sealer(
        sealing.parse_key_list(keys["WEBHOOK_SEALING_PUBLIC_KEYS"], "x"),
        keys["WEBHOOK_SEALING_ACTIVE_KEY_ID"],
    )
    opener = sealing.Opener(sealing.parse_key_list(keys["WEBHOOK_SEALING_PRIVATE_KEYS"], "x"))
    endpoint_id, secret = uuid.uuid4(), webhooks.new_secret()
    sealed = seal_secret(sealer, secret, endpoint_id)
    figures = {}
    for name, work in (
        ("seal", lambda: seal_secret(sealer, secret, endpoint_id)),
        ("open", lambda: open_secret(opener, sealed, endpoint_id)),
    ):
        started = time.process_time()
        for _ in range(ROUNDS):
            work()
        figures[f"webhook_{name}_secret_us"] = round((time.process_time() - started) / ROUNDS * 1e6)
    return figures


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    kafka = Kafka(workdir / "kafka" / "data", log_level="WARN").start()
    services: Services | None = None
    keys = generate_keys("v1")
    try:
        url = postgres.create_database("bench_webhooks")
        create_topics(kafka.connection(), {TOPIC: PARTITIONS, dlq_topic(TOPIC): 1})
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SECRETS_DIR": "/nonexistent",
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            **keys,
        }
        migrate(env, workdir / "logs")
        kafka.grant(pipeline_grants(PipelineTopics.prefixed()))
        services = Services(env, workdir / "logs", kafka.identities())
        running = {spec.name: services.start(spec) for spec in (PUBLISHER, DISPATCHER)}
        pids = {
            "publisher": running[PUBLISHER.name].process.pid,
            "dispatcher": running[DISPATCHER.name].process.pid,
        }
        assert all(pids.values())
        rss = PeakRss({k: int(v or 0) for k, v in pids.items()})
        with _receiver() as port:
            _register(url, keys, port)
            _decide(url, WARMUP, 0)
            _wait_delivered(url, WARMUP, timeout=300)

            cpu = CpuTime(
                {
                    **{k: int(v or 0) for k, v in pids.items()},
                    "postgres": int(postgres.process.pid or 0),
                    "kafka": int(kafka.process.pid or 0),
                },
                alone={"driver_and_receiver": os.getpid()},
            )
            started = time.time()
            _decide(url, THROUGHPUT, WARMUP)
            _wait_delivered(url, WARMUP + THROUGHPUT, timeout=600)
            spent = cpu.spent()
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT max(delivered_at) FROM webhook_deliveries").fetchone()
            assert row is not None
            finished = row[0].timestamp()

            paced_since = datetime.now(UTC)
            for second in range(RATE_SECONDS):
                tick = time.monotonic()
                _decide(url, RATE, WARMUP + THROUGHPUT + second * RATE)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            _wait_delivered(url, WARMUP + THROUGHPUT + RATE * RATE_SECONDS, timeout=300)
            latencies = _latencies_ms(url, paced_since)
        peaks = rss.stop()
    finally:
        if services is not None:
            services.stop_all()
        kafka.stop()
        postgres.stop()
    counted = {k: v for k, v in spent.items() if k != "driver_and_receiver"}
    return {
        "webhook_decisions": float(THROUGHPUT),
        "webhook_deliveries_per_s": round(THROUGHPUT / (finished - started), 1),
        **{
            f"webhook_cpu_ms_per_decision_{name}": round(seconds * 1000 / THROUGHPUT, 3)
            for name, seconds in spent.items()
        },
        "webhook_cpu_ms_per_decision_total": round(sum(counted.values()) * 1000 / THROUGHPUT, 3),
        "webhook_p50_ms": round(_percentile(latencies, 0.50), 1),
        "webhook_p99_ms": round(_percentile(latencies, 0.99), 1),
        "webhook_mean_ms": round(statistics.fmean(latencies), 1) if latencies else float("nan"),
        **{f"{name}_peak_rss_mb": peak for name, peak in peaks.items()},
        **_crypto_us(keys),
    }
