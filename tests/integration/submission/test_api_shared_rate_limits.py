"""Per-client rate limits shared by every API process (prequal_api.rate_limits): three real API
processes on one PostgreSQL and one Hydra, one client's budget between them.

Also the lease statement itself against real PostgreSQL, run as the API's role: what a lease
grants after a known idle time, the cap at the burst, a new client's full bucket, the purge.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from devstack.services import as_role
from prequal.db import roles
from prequal_api.rate_limit_store import LEASE_SQL, PURGE_SQL
from prequal_api.rate_limits import lease_size
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess, start_api
from tests.tokens import Oidc

PROCESSES = 3
BURST = 30
RATE = 0.05  # a token every 20 s: the test's refill is at most a token or two
LEASE = lease_size(BURST)
REQUESTS_PER_PROCESS = BURST  # a limiter per process would admit all of them: 3 × the burst


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, api_env: dict[str, str], oidc: Oidc
) -> Iterator[list[ApiProcess]]:
    settings = {"RATE_LIMIT_GET_PER_SECOND": str(RATE), "RATE_LIMIT_GET_BURST": str(BURST)}
    token = oidc.token()
    started: list[ApiProcess] = []
    try:
        for n in range(PROCESSES):
            tmp = tmp_path_factory.mktemp(f"replica{n}")
            started.append(start_api(tmp, {**api_env, **settings}, f"prequal-api-{n}", token=token))
        yield started
    finally:
        for api in started:
            api.process.stop()


def test_three_api_processes_share_one_clients_budget(replicas: list[ApiProcess]) -> None:
    with replicas[0].client() as http:
        app_id = http.post("/applications", json=application()).json()["application_id"]
    path = f"/applications/{app_id}/status"

    def hammer(api: ApiProcess) -> list[httpx.Response]:
        with api.client() as http, ThreadPoolExecutor(4) as pool:
            return list(pool.map(lambda _: http.get(path), range(REQUESTS_PER_PROCESS)))

    with ThreadPoolExecutor(PROCESSES) as pool:
        answers = [r for per_api in pool.map(hammer, replicas) for r in per_api]

    ok = [r for r in answers if r.status_code == 200]
    limited = [r for r in answers if r.status_code == 429]
    assert len(ok) + len(limited) == len(answers), {r.status_code for r in answers}
    # The stated bound (docs/api-edge.md): the burst plus at most one lease per process; and
    # at least the burst less what each process may still hold unspent.
    assert BURST - PROCESSES * (LEASE - 1) <= len(ok) <= BURST + PROCESSES * LEASE, len(ok)
    for refused in limited:
        assert refused.json()["error_code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1
    print(f"admitted {len(ok)} of {len(answers)} across {PROCESSES} processes (burst {BURST})")


@pytest.fixture
def api_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(as_role(database_url, roles.RoleNames().of("api")), autocommit=True) as c:
        yield c


def lease(
    conn: psycopg.Connection[tuple[object, ...]], client: str, rate: float, burst: float, want: int
) -> tuple[int, float]:
    params = {"client": client, "scope": "get", "rate": rate, "burst": burst, "want": want}
    row = conn.execute(LEASE_SQL, params).fetchone()
    assert row is not None
    return int(str(row[0])), float(str(row[1]))


def age(database_url: str, client: str, tokens: float, seconds: float) -> None:
    """Sets the client's bucket to `tokens`, last leased `seconds` ago (as the owner)."""
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute(
            "UPDATE rate_limit_buckets SET tokens = %s, "
            "updated_at = clock_timestamp() - make_interval(secs => %s) WHERE client_id = %s",
            (tokens, seconds, client),
        )


def test_a_new_client_starts_with_a_full_bucket_and_takes_one_lease(
    api_conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert lease(api_conn, "fresh", rate=1, burst=10, want=4) == (4, 6.0)


def test_a_lease_refills_for_the_time_since_the_last_one_in_whole_tokens(
    api_conn: psycopg.Connection[tuple[object, ...]], database_url: str
) -> None:
    lease(api_conn, "refill", rate=1, burst=10, want=4)
    age(database_url, "refill", tokens=0, seconds=2.5)
    granted, level = lease(api_conn, "refill", rate=1, burst=10, want=4)
    assert granted == 2
    assert 0.5 <= level < 0.9  # 2.5 s of refill (plus the statements' own milliseconds) less 2
    granted, level = lease(api_conn, "refill", rate=1, burst=10, want=4)
    assert granted == 0  # no whole token yet: nothing taken, the fraction kept
    assert 0.5 <= level < 1


def test_a_long_idle_bucket_refills_only_to_the_burst(
    api_conn: psycopg.Connection[tuple[object, ...]], database_url: str
) -> None:
    lease(api_conn, "idle", rate=5, burst=10, want=10)
    age(database_url, "idle", tokens=0, seconds=3600)
    assert lease(api_conn, "idle", rate=5, burst=10, want=10) == (10, 0.0)
    granted, level = lease(api_conn, "idle", rate=5, burst=10, want=10)
    assert granted == 0  # right after: milliseconds of refill, no whole token
    assert level < 1


def test_the_purge_deletes_only_buckets_idle_past_the_horizon(
    api_conn: psycopg.Connection[tuple[object, ...]], database_url: str
) -> None:
    lease(api_conn, "old", rate=1, burst=10, want=1)
    lease(api_conn, "recent", rate=1, burst=10, want=1)
    age(database_url, "old", tokens=9, seconds=7200)
    api_conn.execute(PURGE_SQL, (3600,))
    left = {
        str(c)
        for (c,) in api_conn.execute(
            "SELECT client_id FROM rate_limit_buckets WHERE client_id IN ('old', 'recent')"
        ).fetchall()
    }
    assert left == {"recent"}
