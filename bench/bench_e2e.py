"""End to end: applications from `POST` to final status through all four processes.

Everything runs co-located as in `make run`: durable PostgreSQL (fsync on), Kafka, and the API,
outbox publisher, credit-service and decision-service from their console scripts. After a
warm-up of 3,000 applications, three runs on one platform:

- throughput: 10,000 applications posted as fast as 32 connections allow; `e2e_apps_per_s` is
  10,000 over the time from the first POST to the last final status. `e2e_cpu_ms_per_app_*`
  is the CPU time (user + system) each process, PostgreSQL and Kafka spent per application in
  this run: on 2 cores, 1,000 applications/s leaves 2 ms of CPU per application in total;
- latency: applications at a fixed 300/s (open loop) for 10 s; `e2e_p50/p95/p99_ms` are the
  times from each POST's scheduled send time (so a late load generator counts against the
  platform, not for it) to its final status (the decision's `updated_at`: its transaction's
  start, one clock with the load generator's). Per-stage medians come from the rows' own
  timestamps (API commit, credit transaction, decision update);
- profile: 3,000 more applications with py-spy sampling each service; the hottest frames are
  printed and the collapsed stacks written to `.bench/profile-<service>.txt`.

The load generator is a minimal keep-alive HTTP/1.1 client so it takes little of the 2 cores.

decision-service runs the default policy and no challenger (`e2e_challenger` = 0), as a
pipeline that names none. `BENCH_E2E_CHALLENGER=1` adds a challenger policy, so every
application is decided twice and a shadow decision row is written (`e2e_challenger` = 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import e2e_stats
import psycopg
from measure import CpuTime, PeakRss, Profiles

from decision_service.policy import DecisionPolicy, ManualReviewOffer
from devstack.hydra import Hydra, fetch_token
from devstack.kafka import Kafka
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from devstack.services import API, CREDIT, DECISION, PUBLISHER, Services, migrate
from prequal.dlq import dlq_topic
from prequal.kafka import create_topics
from prequal.kafka_acl import PipelineTopics, pipeline_grants
from prequalctl.keys import generate_keys

THROUGHPUT_APPS = 10_000
WARMUP_APPS = 3_000  # "sustained": Kafka's JIT and every cache are warm before the clock starts
LATENCY_RATE = 300
LATENCY_SECONDS = 10
PROFILE_APPS = 3_000
PROFILES = Path(__file__).resolve().parent.parent / ".bench"
CONNECTIONS = 32
PARTITIONS = 3
# A challenger that differs where it matters: a higher minimum, reduced offers for review.
CHALLENGER = DecisionPolicy(
    min_credit_score=700, manual_review_offer=ManualReviewOffer(enabled=True)
)


def _body() -> bytes:
    raw = uuid.uuid4().int
    letters = "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(raw >> (5 * i)) % 26] for i in range(6))
    pan = letters[:5] + f"{(raw >> 40) % 10000:04d}" + letters[5]
    return json.dumps(
        {
            "pan_number": pan,
            "first_name": "Bench",
            "last_name": "Applicant",
            "date_of_birth": "1990-04-12",
            "email": "bench@example.com",
            "phone_number": "9876543210",
            "requested_amount": 500000,
            "monthly_income": 85000,
            "loan_type": ("PERSONAL", "HOME", "AUTO")[raw % 3],
            "consent": {
                "soft_inquiry": True,
                "text_version": "soft-inquiry-v1",
                "captured_at": "2026-12-01T00:00:00Z",
                "channel": "WEB",
            },
        }
    ).encode()


_bearer = ""  # "Authorization: Bearer …\r\n", from the run's Hydra


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads the JSON answer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST /applications HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n{_bearer}\r\n".encode()
            + body
        )
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), json.loads(payload)


async def _post_all(
    url: tuple[str, int], count: int, rate: float | None
) -> list[tuple[str, float]]:
    """(application id, wall time it was sent) for each `202` of `count` POSTs, paced at
    `rate` if given: then the time it was due, whether or not a connection was free."""
    bodies = [_body() for _ in range(count)]
    accepted: list[tuple[str, float]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    start, wall_start = time.monotonic(), time.time()

    async def worker() -> None:
        conn = Connection(*url)
        while not queue.empty():
            i = queue.get_nowait()
            sent = time.time()
            if rate is not None:
                sent = wall_start + i / rate
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            status, answer = await conn.post(bodies[i])
            if status == 202:
                accepted.append((answer["application_id"], sent))

    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return accepted


def _wait_final(url: str, ids: list[str], timeout: float) -> dict[str, float]:
    """application id → wall time of its decision, once all are final."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM applications WHERE id = ANY(%s::uuid[]) "
                "AND status = 'PENDING'",
                (ids,),
            ).fetchone()
            if row == (0,):
                break
            time.sleep(1.0)  # the figures come from the rows, not from this loop
        rows = conn.execute(
            "SELECT id::text, extract(epoch FROM updated_at)::float8 FROM applications "
            "WHERE id = ANY(%s::uuid[]) AND status <> 'PENDING'",
            (ids,),
        ).fetchall()
    return {str(i): float(t) for i, t in rows}


def _stages(url: str, ids: list[str]) -> dict[str, float]:
    """Median milliseconds of the two halves of the path, from the rows' own timestamps.

    The publisher deletes what it has sent, so the hops are measured between the API's commit
    (`created_at`), credit-service's transaction (its audit row) and decision-service's update.
    """
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT extract(epoch FROM l.at - a.created_at),
                   extract(epoch FROM a.updated_at - l.at)
            FROM applications a
            JOIN audit_log l ON l.application_id = a.id AND l.actor = 'credit-service'
            WHERE a.id = ANY(%s::uuid[]) AND a.status <> 'PENDING'
            """,
            (ids,),
        ).fetchall()
    if not rows:
        return {}
    names = ("e2e_stage_to_credit_ms", "e2e_stage_credit_to_decision_ms")
    return {
        name: round(statistics.median(float(r[i]) for r in rows) * 1000, 1)
        for i, name in enumerate(names)
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _latencies(accepted: list[tuple[str, float]], final: dict[str, float]) -> list[float]:
    return [(final[i] - at) * 1000 for i, at in accepted if i in final]


def _print_profiles(names: list[str], hottest: dict[str, list[tuple[str, float]]]) -> None:
    print(f"    profiles of a {PROFILE_APPS:,}-application burst (collapsed stacks in {PROFILES}):")
    for name in names:
        if name not in hottest:
            print(f"      {name}: no profile (py-spy needs ptrace: root or CAP_SYS_PTRACE)")
            continue
        print(f"      {name}: where its samples were taken (own time)")
        for frame, share in hottest[name]:
            print(f"        {share:6.1%}  {frame}")


def _pid(process: ManagedProcess | None) -> int:
    pid = process.pid if process is not None else None
    assert pid is not None, "the process is not running"
    return pid


def _service_env(url: str, bootstrap: str, hydra: Hydra) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SECRETS_DIR": "/nonexistent",
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LOG_LEVEL": "WARNING",
        "OIDC_ISSUER": hydra.issuer,
        "OIDC_JWKS_URL": hydra.jwks_url,
        "RATE_LIMIT_POST_PER_SECOND": "0",  # one client is the whole load
        **generate_keys("v1"),
    }
    if os.environ.get("BENCH_E2E_CHALLENGER", "") not in {"", "0"}:
        env["DECISION_CHALLENGER_POLICY"] = CHALLENGER.text
    return env


def _kafka(workdir: Path) -> Kafka:
    """BENCH_KAFKA_PLAINTEXT=1: an open broker, to measure what SASL_SSL costs."""
    plaintext = os.environ.get("BENCH_KAFKA_PLAINTEXT", "") not in {"", "0"}
    security: Literal["SASL_SSL", "PLAINTEXT"] = "PLAINTEXT" if plaintext else "SASL_SSL"
    return Kafka(workdir / "kafka" / "data", log_level="WARN", security=security).start()


def _topics(kafka: Kafka) -> None:
    """The pipeline's topics, and ACLs that let each service do what the design lets it."""
    # The decided topic gets each decision's event; no dispatcher reads it here.
    topics = PipelineTopics.prefixed()
    create_topics(
        kafka.connection(),
        {**dict.fromkeys(topics.all(), PARTITIONS), **{dlq_topic(t): 1 for t in topics.all()}},
    )
    kafka.grant(pipeline_grants(topics))


def run(workdir: Path) -> dict[str, float]:
    postgres = Postgres(
        workdir / "postgres" / "data",
        durable=True,
        settings=e2e_stats.PG_SETTINGS if e2e_stats.enabled() else {},
    ).start()
    kafka = _kafka(workdir)
    services: Services | None = None
    hydra: Hydra | None = None
    global _bearer  # noqa: PLW0603 - the load generator's one header, set once per run
    try:
        hydra = Hydra(workdir / "hydra", postgres).start(timeout=300)
        token = fetch_token(hydra.token_url, hydra.register_client("bench"))
        _bearer = f"Authorization: Bearer {token}\r\n"
        url = postgres.create_database("bench_e2e")
        _topics(kafka)
        env = _service_env(url, kafka.bootstrap, hydra)
        migrate(env, workdir / "logs")
        services = Services(env, workdir / "logs", kafka.identities())
        running = {spec.name: services.start(spec) for spec in (API, PUBLISHER, CREDIT, DECISION)}
        pids = {
            "api": _pid(running[API.name].process),
            "publisher": _pid(running[PUBLISHER.name].process),
            "credit": _pid(running[CREDIT.name].process),
            "decision": _pid(running[DECISION.name].process),
        }
        rss = PeakRss(pids)
        api = ("127.0.0.1", running[API.name].port)

        # Warm-up: connections, caches, consumer group assignment, the JVM's compiled code.
        warmup = asyncio.run(_post_all(api, WARMUP_APPS, None))
        _wait_final(url, [i for i, _ in warmup], timeout=300)
        # Settle after the warm-up; with BENCH_E2E_STATS=1, reset the statistics too.
        stats = e2e_stats.settle(
            url, _pid(kafka.process), kafka.data_dir / "logs", PROFILES / "e2e-stats.json"
        )
        cpu = CpuTime(
            {
                **pids,
                "postgres": _pid(postgres.process),
                "kafka": _pid(kafka.process),
            },
            alone={"loadgen": os.getpid()},  # its children are all of the above
        )
        started = time.time()
        accepted = asyncio.run(_post_all(api, THROUGHPUT_APPS, None))
        posted = time.time()
        final = _wait_final(url, [i for i, _ in accepted], timeout=600)
        finished = max(final.values()) if final else time.time()
        cpu_spent = cpu.spent()
        e2e_stats.report(stats, len(final))
        burst = _latencies(accepted, final)

        time.sleep(2)
        paced_start = time.time()
        paced = asyncio.run(_post_all(api, LATENCY_RATE * LATENCY_SECONDS, LATENCY_RATE))
        paced_rate = len(paced) / (time.time() - paced_start)
        paced_final = _wait_final(url, [i for i, _ in paced], timeout=300)
        latencies = _latencies(paced, paced_final)
        stages = _stages(url, [i for i, _ in paced])

        # A third, separate burst under the profiler, so sampling does not disturb the figures.
        profiles = Profiles(pids, PROFILES)
        profiled = asyncio.run(_post_all(api, PROFILE_APPS, None))
        _wait_final(url, [i for i, _ in profiled], timeout=300)
        _print_profiles(list(pids), profiles.stop())
        peaks = rss.stop()
    finally:
        if services is not None:
            services.stop_all()
        kafka.stop()
        if hydra is not None:
            hydra.stop()
        postgres.stop()
    return {
        "e2e_challenger": float("DECISION_CHALLENGER_POLICY" in env),
        "e2e_apps": float(len(final)),
        "e2e_apps_per_s": round(len(final) / (finished - started), 1),
        "e2e_post_per_s": round(len(accepted) / (posted - started), 1),
        "e2e_burst_p99_ms": round(_percentile(burst, 0.99), 1),
        "e2e_rate_per_s": float(LATENCY_RATE),
        "e2e_rate_achieved_per_s": round(paced_rate, 1),
        "e2e_p50_ms": round(_percentile(latencies, 0.50), 1),
        "e2e_p95_ms": round(_percentile(latencies, 0.95), 1),
        "e2e_p99_ms": round(_percentile(latencies, 0.99), 1),
        **stages,
        **{f"{name}_peak_rss_mb": peak for name, peak in peaks.items()},
        **{
            f"e2e_cpu_ms_per_app_{name}": round(seconds * 1000 / max(len(final), 1), 3)
            for name, seconds in cpu_spent.items()
        },
        "e2e_cpu_ms_per_app_total": round(sum(cpu_spent.values()) * 1000 / max(len(final), 1), 3),
    }
