"""prequal-api: POST /applications throughput and latency against a real, durable PostgreSQL.

The API runs as its console script (one uvicorn process). The load generator is one asyncio
process speaking raw HTTP/1.1 over keep-alive connections, so it costs the 2-core machine far
less CPU than the API it measures. Two phases:

- latency: an open loop at a fixed 300 requests/s; each latency counts from the moment the
  request was due, so a stalled server cannot hide queueing (no coordinated omission);
- throughput: a closed loop at a fixed concurrency of 16 for 10 s;
- status reads: `GET /applications/{id}/status` of the applications just accepted, a closed loop
  at the same concurrency for 5 s.

CPU per request (the API process's user + system time over the closed loops, divided by the
requests answered) moves least on a shared machine: `api_cpu_ms_per_post`, `api_cpu_ms_per_get`.

Every request carries a distinct synthetic PAN, so each one is a real 202 insert, and a bearer
token from a real ORY Hydra (JWT access token), validated by the API against Hydra's JWKS. The
cost of that validation alone is measured in-process too (`api_token_validation_us`): the JWKS
is fetched once (`api_jwks_fetches`), so a validated token costs no network call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psutil
from measure import PeakRss

from devstack.hydra import AUDIENCE, Hydra, fetch_token
from devstack.net import LOOPBACK, free_port, http_ok
from devstack.postgres import Postgres
from devstack.process import ManagedProcess
from prequal.db import migrate
from prequal_api.auth import KeySet, TokenValidator, http_jwks_fetcher
from prequalctl.keys import generate_keys

RATE = 300
LATENCY_SECONDS = 20.0
WARMUP_SECONDS = 3.0
CONCURRENCY = 16
THROUGHPUT_SECONDS = 10.0
STATUS_SECONDS = 5.0
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_counter = itertools.count(1)
VALIDATIONS = 5000
_bearer = b""


def _pan(n: int) -> str:
    letters = []
    rest = n // 10_000
    for _ in range(6):
        rest, digit = divmod(rest, 26)
        letters.append(_LETTERS[digit])
    return "".join(letters[:5]) + f"{n % 10_000:04d}" + letters[5]


def _request() -> bytes:
    body = json.dumps(
        {
            "pan_number": _pan(next(_counter) + 7_000_000),
            "first_name": "Bench",
            "last_name": "Mark",
            "date_of_birth": "1988-02-29",
            "email": "bench@example.com",
            "phone_number": "9876543210",
            "requested_amount": 250000,
            "monthly_income": 90000,
            "loan_type": "HOME",
            "consent": {
                "soft_inquiry": True,
                "text_version": "soft-inquiry-v1",
                "captured_at": "2026-12-01T00:00:00Z",
                "channel": "WEB",
            },
        }
    ).encode()
    head = (
        "POST /applications HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    return head.encode() + _bearer + b"\r\n" + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self) -> int:
        status, _ = await self.exchange(_request())
        return status

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(status_line.split()[1]), body


async def _connect(port: int, count: int) -> list[Connection]:
    return [Connection(*await asyncio.open_connection(LOOPBACK, port)) for _ in range(count)]


async def _open_loop(port: int, rate: float, seconds: float) -> tuple[list[float], int]:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in await _connect(port, 64):
        pool.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.post()
        finally:
            pool.put_nowait(conn)
        if status == 202:
            latencies.append(loop.time() - due)
        else:
            errors += 1

    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return latencies, errors


async def _closed_loop(port: int, concurrency: int, seconds: float) -> list[str]:
    """The ids of the applications accepted."""
    conns = await _connect(port, concurrency)
    deadline = time.monotonic() + seconds
    accepted: list[str] = []

    async def worker(conn: Connection) -> None:
        while time.monotonic() < deadline:
            status, body = await conn.exchange(_request())
            if status == 202:
                accepted.append(json.loads(body)["application_id"])

    await asyncio.gather(*(worker(c) for c in conns))
    return accepted


async def _status_loop(port: int, ids: list[str], concurrency: int, seconds: float) -> int:
    """Status reads of `ids`, round robin, for `seconds`: how many answered 200."""
    conns = await _connect(port, concurrency)
    deadline = time.monotonic() + seconds
    turn = itertools.cycle(ids)
    done = 0

    async def worker(conn: Connection) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            request = (
                f"GET /applications/{next(turn)}/status HTTP/1.1\r\nHost: bench\r\n".encode()
                + _bearer
                + b"\r\n"
            )
            status, _ = await conn.exchange(request)
            if status == 200:
                done += 1

    await asyncio.gather(*(worker(c) for c in conns))
    return done


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def _validation_cost(hydra: Hydra, token: str) -> tuple[float, float, int]:
    """Microseconds per validation of a token seen before (the request path), per full
    verification (signature and claims, a token's first use), and the JWKS fetches made."""
    keys = KeySet(http_jwks_fetcher(hydra.jwks_url), cache_seconds=300, min_refetch_seconds=10)
    validator = TokenValidator(keys, hydra.issuer, AUDIENCE, leeway_seconds=10)
    await validator.validate(token)
    started = time.perf_counter()
    for _ in range(VALIDATIONS):
        await validator.validate(token)
    cached = (time.perf_counter() - started) / VALIDATIONS * 1e6
    started = time.perf_counter()
    for _ in range(VALIDATIONS // 10):
        await validator._verify(token)  # the uncached cost, measured on purpose
    verify = (time.perf_counter() - started) / (VALIDATIONS // 10) * 1e6
    return cached, verify, keys.fetches


def run(workdir: Path) -> dict[str, float]:
    global _bearer  # noqa: PLW0603 - the load generator's one header, set once per run
    postgres = Postgres(workdir / "postgres" / "data", durable=True).start()
    hydra: Hydra | None = None
    api: ManagedProcess | None = None
    try:
        hydra = Hydra(workdir / "hydra", postgres).start()
        token = fetch_token(hydra.token_url, hydra.register_client("bench"))
        _bearer = f"Authorization: Bearer {token}\r\n".encode()
        validation_us, verify_us, jwks_fetches = asyncio.run(_validation_cost(hydra, token))
        url = postgres.create_database("bench_api")
        migrate.upgrade(url)
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SECRETS_DIR": "/nonexistent",
            "DATABASE_URL": url,
            "API_HOST": LOOPBACK,
            "API_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "OIDC_ISSUER": hydra.issuer,
            "OIDC_JWKS_URL": hydra.jwks_url,
            # One client is the whole load here: its rate limit would cap the measurement.
            "RATE_LIMIT_POST_PER_SECOND": "0",
            "RATE_LIMIT_GET_PER_SECOND": "0",
            **generate_keys("v1"),
        }
        api = ManagedProcess(
            "prequal-api",
            [str(Path(sys.executable).parent / "prequal-api")],
            workdir / "api.log",
            env=env,
        )
        api.start()
        api.wait_ready(lambda: http_ok(f"http://{LOOPBACK}:{port}/ready"), timeout=30)
        assert api.pid is not None
        rss = PeakRss({"api": api.pid})
        asyncio.run(_open_loop(port, 100, WARMUP_SECONDS))
        latencies, errors = asyncio.run(_open_loop(port, RATE, LATENCY_SECONDS))
        process = psutil.Process(api.pid)
        cpu = process.cpu_times()
        accepted = asyncio.run(_closed_loop(port, CONCURRENCY, THROUGHPUT_SECONDS))
        completed = len(accepted)
        after = process.cpu_times()
        # CPU per POST moves least on a shared, noisy machine: compare this one first.
        cpu_ms = (after.user + after.system - cpu.user - cpu.system) * 1000 / max(completed, 1)
        read = asyncio.run(_status_loop(port, accepted, CONCURRENCY, STATUS_SECONDS))
        last = process.cpu_times()
        get_cpu_ms = (last.user + last.system - after.user - after.system) * 1000 / max(read, 1)
        peak = rss.stop()["api"]
    finally:
        if api is not None:
            api.stop()
        if hydra is not None:
            hydra.stop()
        postgres.stop()
    if errors or not latencies:
        raise RuntimeError(f"{errors} requests did not answer 202 during the latency phase")
    return {
        "api_post_rps": round(completed / THROUGHPUT_SECONDS, 1),
        "api_post_p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "api_post_p95_ms": round(_percentile(latencies, 0.95) * 1000, 2),
        "api_post_p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "api_post_rate_rps": float(RATE),
        "api_post_concurrency": float(CONCURRENCY),
        "api_peak_rss_mb": round(peak, 1),
        "api_cpu_ms_per_post": round(cpu_ms, 3),
        "api_get_rps": round(read / STATUS_SECONDS, 1),
        "api_cpu_ms_per_get": round(get_cpu_ms, 3),
        "api_token_validation_us": round(validation_us, 2),
        "api_token_verify_us": round(verify_us, 1),
        "api_jwks_fetches": float(jwks_fetches),
    }
