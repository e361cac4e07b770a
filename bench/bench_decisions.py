"""decision-service's share alone: CPU per decision of its handler and of PostgreSQL.

The end-to-end benchmark's per-process figures move with whatever else the machine runs; this
one isolates the decision step so a change to it can be compared run against run. A durable
PostgreSQL holds 12,000 PENDING applications; the consumer runtime's batch applier (the fast
path the service runs, inbox claim included) decides them in batches of `BATCH` credit
reports, with no Kafka. `decisions_cpu_ms_per_decision_python` is this process's CPU (the
handler, psycopg, the runtime), `decisions_cpu_ms_per_decision_postgres` the server's, both
per decision, over the last 10,000 (the first 2,000 warm the caches and prepared statements).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
from measure import apply_measured
from prometheus_client import CollectorRegistry

from decision_service.handler import DecideApplication, DecisionHandler, DecisionMetrics
from decision_service.policy import DecisionPolicy
from devstack.postgres import Postgres
from prequal import events
from prequal.consumer import ConsumerMetrics
from prequal.consumer.batch import BatchApplier, Pending
from prequal.db import migrate
from prequal.kafka import InboundRecord

WARMUP = 2_000
MEASURED = 10_000
# About what one poll brings decision-service at 300 applications/s; BENCH_DECISIONS_BATCH=5
# is what it brings at the 100 applications/s of a loaded e2e run.
BATCH = int(os.environ.get("BENCH_DECISIONS_BATCH", "25"))
TOPIC, GROUP = "credit_reports_generated", "decision-service"


def _applications(url: str, count: int) -> list[tuple[uuid.UUID, Decimal, Decimal]]:
    """PENDING rows as the API writes them, incomes and amounts varied across the outcomes."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            INSERT INTO applications (id, client_id, pan_ciphertext, pan_blind_index,
                first_name, last_name, date_of_birth, email, phone_number, requested_amount,
                monthly_income, loan_type)
            SELECT gen_random_uuid(), 'bench', decode(md5(i::text || 'c'), 'hex'),
                decode(md5(i::text || 'b'), 'hex'),
                'Bench', 'Applicant', '1990-04-12', 'bench@example.com', '9876543210',
                (100000 + (i %% 50) * 20000)::numeric, (20000 + (i %% 40) * 2500)::numeric,
                (ARRAY['PERSONAL', 'HOME', 'AUTO'])[1 + i %% 3]
            FROM generate_series(1, %s) AS i
            RETURNING id, monthly_income, requested_amount
            """,
            (count,),
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def _pending(application: tuple[uuid.UUID, Decimal, Decimal], i: int) -> Pending[DecideApplication]:
    application_id, income, amount = application
    report = events.CreditReportGenerated(
        application_id=application_id,
        credit_score=560 + (i * 7) % 300,
        monthly_income=income,
        requested_amount=amount,
        loan_type="PERSONAL",
        generated_at=datetime.now(UTC),
    )
    record = InboundRecord(TOPIC, i % 3, i, str(application_id).encode(), b"", [])
    return Pending(record, uuid.uuid4(), DecideApplication(report))


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    try:
        url = postgres.create_database("bench_decisions")
        migrate.upgrade(url)
        items = [_pending(app, i) for i, app in enumerate(_applications(url, WARMUP + MEASURED))]
        registry = CollectorRegistry()
        applier = BatchApplier(
            TOPIC,
            GROUP,
            DecisionHandler(DecisionPolicy(), DecisionMetrics(registry)),
            lambda: psycopg.connect(url, autocommit=True),
            ConsumerMetrics(registry),
        )
        assert postgres.process is not None
        assert postgres.process.pid is not None
        elapsed, spent = apply_measured(applier, items, BATCH, WARMUP, postgres.process.pid)
        applier.close()
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM applications WHERE status = 'PENDING'"
            ).fetchone()
        assert row == (0,), f"{row} applications left PENDING"
    finally:
        postgres.stop()
    return {
        "decisions_batch": float(BATCH),
        "decisions_per_s": round(MEASURED / elapsed, 1),
        **{
            f"decisions_cpu_ms_per_decision_{name}": round(seconds * 1000 / MEASURED, 3)
            for name, seconds in spent.items()
        },
    }
