"""credit-service's share alone: CPU per report of its handler and of PostgreSQL.

Like `bench_decisions.py` for the next step: a durable PostgreSQL holds 12,000 sealed PENDING
applications as the API writes them (the row, its sealed data key, hybrid ML-KEM-768 + X25519);
the consumer runtime's batch applier (the fast path credit-service runs, inbox claim included)
scores them in batches of `BATCH` submitted events, with no Kafka: the sealed data key read,
the HPKE open, the PAN's AES-GCM, the score, the audit row and the report's outbox row.
`credit_cpu_ms_per_report_python` is this process's CPU (the handler, psycopg, the runtime),
`credit_cpu_ms_per_report_postgres` the server's, both per report, over the last 10,000 (the
first 2,000 warm the caches and prepared statements).
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

from credit_service.handler import CreditHandler, CreditMetrics, Keys, ScoreApplication
from devstack.postgres import Postgres
from prequal import events, pan, sealing
from prequal.consumer import ConsumerMetrics
from prequal.consumer.batch import BatchApplier, Pending
from prequal.db import migrate
from prequal.kafka import InboundRecord

WARMUP = 2_000
MEASURED = 10_000
BATCH = 25  # as bench_decisions.py: about what one poll brings at 300 applications/s
TOPIC, GROUP = "loan_applications_submitted", "credit-service"
PERSONAL = b'{"first_name":"Bench","last_name":"Applicant","date_of_birth":"1990-04-12"}'


def _pan(i: int) -> str:
    letters = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(i >> (5 * k)) % 26] for k in range(6))
    return letters[:5] + f"{i % 10000:04d}" + letters[5]


def _applications(url: str, sealer: sealing.Sealer, count: int) -> list[ScoreApplication]:
    """Sealed PENDING rows and their data keys as the API writes them; the events to score."""
    commands: list[ScoreApplication] = []
    rows: list[tuple[object, ...]] = []
    keys: list[tuple[object, ...]] = []
    for i in range(count):
        application_id = uuid.uuid4()
        sealed = sealer.seal(application_id, _pan(i), PERSONAL)
        income, amount = Decimal(20_000 + (i % 40) * 2_500), Decimal(100_000 + (i % 50) * 20_000)
        rows.append((application_id, sealed.pan, os.urandom(32), sealed.personal, amount, income))
        keys.append((application_id, sealed.key_id, sealed.sealed_key))
        submitted = events.ApplicationSubmitted(
            application_id=application_id,
            pan_encrypted=pan.to_transport(sealed.pan),
            monthly_income=income,
            requested_amount=amount,
            loan_type="PERSONAL",
            submitted_at=datetime.now(UTC),
        )
        commands.append(ScoreApplication(uuid.uuid4(), submitted))
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO applications (id, client_id, pan_ciphertext, pan_blind_index, "
            "personal_ciphertext, requested_amount, monthly_income, loan_type) "
            "VALUES (%s, 'bench', %s, %s, %s, %s, %s, 'PERSONAL')",
            rows,
        )
        cursor.executemany(
            "INSERT INTO application_data_keys (application_id, key_id, sealed_key) "
            "VALUES (%s, %s, %s)",
            keys,
        )
    return commands


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    try:
        url = postgres.create_database("bench_credit")
        migrate.upgrade(url)
        pair = sealing.generate_key_pair()
        commands = _applications(url, sealing.Sealer({"s1": pair.public}, "s1"), WARMUP + MEASURED)
        items = [
            Pending(InboundRecord(TOPIC, i % 3, i, b"", b"", []), uuid.uuid4(), command)
            for i, command in enumerate(commands)
        ]
        registry = CollectorRegistry()
        applier = BatchApplier(
            TOPIC,
            GROUP,
            CreditHandler(
                Keys(sealing.Opener({"s1": pair.private})), "reports", CreditMetrics(registry)
            ),
            lambda: psycopg.connect(url, autocommit=True),
            ConsumerMetrics(registry),
        )
        assert postgres.process is not None
        assert postgres.process.pid is not None
        elapsed, spent = apply_measured(applier, items, BATCH, WARMUP, postgres.process.pid)
        applier.close()
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM outbox_events").fetchone()
        assert row == (WARMUP + MEASURED,), f"{row} reports in the outbox"
    finally:
        postgres.stop()
    return {
        "credit_batch": float(BATCH),
        "credit_reports_per_s": round(MEASURED / elapsed, 1),
        **{
            f"credit_cpu_ms_per_report_{name}": round(seconds * 1000 / MEASURED, 3)
            for name, seconds in spent.items()
        },
    }
