"""The cost of a rotation's second live index key: the submission with one key vs two.

During a rotation the API computes the PAN's blind index under every live key, locks every
digest and checks the 24-hour rule with `pan_blind_index = ANY(candidates)`. Measured here:

- CPU per submission for the digests (HMAC-SHA256 per live key, plus the idempotency pair),
  in process;
- the submission itself, `submit_application()` through the API's repository on a real,
  durable PostgreSQL holding PREFILL applications, one key and two keys interleaved in
  blocks so drift on the shared machine hits both alike (wall milliseconds per call);
- whether the planner answers the ANY() check from `ix_applications_pan_recent`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from devstack.postgres import Postgres
from prequal import audit, blind_index, outbox
from prequal.db import migrate
from prequal_api import repository

PREFILL = 50_000
BLOCK = 100
BLOCKS = 10  # per ring
CPU_ROUNDS = 20_000
_counter = iter(range(10**9))


def _pan() -> str:
    n = next(_counter)
    letters = "".join(chr(65 + (n // 26**i) % 26) for i in range(6))
    return letters[:5] + f"{n % 10_000:04d}" + letters[5]


def _cpu_us(ring: blind_index.IndexKeyRing) -> float:
    started = time.process_time()
    for _ in range(CPU_ROUNDS):
        ring.pan_candidates("ABCDE1234F")
    return (time.process_time() - started) / CPU_ROUNDS * 1e6


async def _submit(conn: Any, ring: blind_index.IndexKeyRing) -> float:
    app_id = uuid.uuid4()
    indexes = ring.pan_candidates(_pan())
    new = repository.NewApplication(
        id=app_id,
        client_id="bench",
        pan_masked="XXXXXX0000",
        pan_ciphertext=os.urandom(40),
        pan_indexes=indexes,
        personal_ciphertext=os.urandom(200),
        sealed_key=os.urandom(85),
        requested_amount=Decimal(500000),
        monthly_income=Decimal(85000),
        loan_type="PERSONAL",
    )
    entry = audit.AuditEntry(app_id, "encrypt", "bench", "v1", principal="bench")
    event = outbox.OutboxRow.new("bench", "loan.application.submitted.v1", app_id, "{}")
    consent = repository.NewConsent("soft-inquiry-v1", datetime.now(UTC), "WEB")
    started = time.perf_counter()
    outcome = await repository.submit(
        conn, blind_index.lock_keys(indexes.values()), new, entry, event, consent=consent
    )
    elapsed = time.perf_counter() - started
    assert outcome.created_at is not None
    return elapsed * 1000


async def _measure(url: str, rings: dict[str, blind_index.IndexKeyRing]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in rings}
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)
    try:
        for ring in rings.values():  # warm up both plans
            for _ in range(20):
                await _submit(conn, ring)
        for _ in range(BLOCKS):
            for name, ring in rings.items():
                for _ in range(BLOCK):
                    times[name].append(await _submit(conn, ring))
    finally:
        await conn.close()
    return times


def _plan(url: str, ring: blind_index.IndexKeyRing) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "EXPLAIN SELECT 1 FROM applications WHERE pan_blind_index = ANY(%s::bytea[]) "
            "AND created_at > now() - interval '24 hours'",
            (list(ring.pan_candidates("ABCDE1234F").values()),),
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    try:
        url = postgres.create_database("bench_index")
        migrate.upgrade(url)
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO applications (id, client_id, pan_blind_index, pan_index_key_id, "
                "requested_amount, monthly_income, loan_type) SELECT gen_random_uuid(), 'bench', "
                "sha256(i::text::bytea), 'v1', 1, 1, 'PERSONAL' FROM generate_series(1, %s) i",
                (PREFILL,),
            )
            conn.execute("ANALYZE applications")
        v1, v2 = os.urandom(32), os.urandom(32)
        rings = {
            "one": blind_index.IndexKeyRing({"v1": v1}, "v1"),
            "two": blind_index.IndexKeyRing({"v1": v1, "v2": v2}, "v2"),
        }
        times = asyncio.run(_measure(url, rings))
        plan = _plan(url, rings["two"])
        cpu = {name: _cpu_us(ring) for name, ring in rings.items()}
    finally:
        postgres.stop()
    figures: dict[str, float] = {}
    for name, samples in times.items():
        ordered = sorted(samples)
        figures[f"index_submit_{name}_key_p50_ms"] = round(statistics.median(ordered), 3)
        figures[f"index_submit_{name}_key_p95_ms"] = round(ordered[int(len(ordered) * 0.95)], 3)
        figures[f"index_digest_{name}_key_cpu_us"] = round(cpu[name], 2)
    figures["index_submit_two_vs_one_p50_ratio"] = round(
        figures["index_submit_two_key_p50_ms"] / figures["index_submit_one_key_p50_ms"], 3
    )
    figures["index_any_check_uses_index"] = 1.0 if "ix_applications_pan_recent" in plan else 0.0
    return figures
