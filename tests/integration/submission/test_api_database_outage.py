"""prequal-api while PostgreSQL is down: 503 with Retry-After, not ready, still alive; then back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

from devstack.postgres import Postgres
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess, base_env
from tests.tokens import Oidc


def test_api_answers_503_while_postgres_is_down_and_recovers_after_restart(
    api: ApiProcess, client: httpx.Client, postgres: Postgres
) -> None:
    assert client.post("/applications", json=application()).status_code == 202
    postgres.stop()
    try:
        down = client.post("/applications", json=application())
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json()["error_code"] == "DATABASE_UNAVAILABLE"
        assert set(down.json()) == {"error_code", "message", "details", "request_id"}
        assert client.get("/ready").status_code == 503
        assert (
            client.get("/applications/00000000-0000-0000-0000-000000000000/status").status_code
            == 503
        )
        assert client.get("/health").status_code == 200
        assert api.process.alive()
    finally:
        postgres.start()

    deadline = time.monotonic() + 30
    codes: list[int] = []
    while time.monotonic() < deadline:
        codes.append(client.post("/applications", json=application()).status_code)
        if codes[-1] == 202:
            break
        time.sleep(0.5)
    assert codes[-1] == 202, f"no recovery after restart: {codes}"
    assert client.get("/ready").status_code == 200
    assert api.process.alive()


def test_api_answers_503_while_the_database_refuses_writes(
    api: ApiProcess, client: httpx.Client, postgres: Postgres, database_url: str
) -> None:
    """Found by the chaos run: a database that answers but is read-only (a failover to a
    standby) made every POST a 500."""
    database = database_url.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        setting = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        with psycopg.connect(postgres.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" {setting}')
            # The setting applies to new sessions: the API's pooled ones are ended.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    read_only(True)
    try:
        # The first requests meet the pool's terminated connections (503s already); more than
        # the pool's maximum (16) reach the fresh sessions, which refuse writes: 503 too.
        codes = {client.post("/applications", json=application()).status_code for _ in range(24)}
        assert codes == {503}
        assert api.process.alive()
    finally:
        read_only(False)
    deadline = time.monotonic() + 30
    while client.post("/applications", json=application()).status_code != 202:
        assert time.monotonic() < deadline, "no 202 within 30 s after the database took writes"
        time.sleep(0.5)


def test_api_refuses_to_start_on_an_unmigrated_database(
    postgres: Postgres, pan_keys: dict[str, str], oidc: Oidc
) -> None:
    url = postgres.create_database("sub_unmigrated")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prequal-api")],
        env=base_env(DATABASE_URL=url, API_PORT="1", **pan_keys, **oidc.api_env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "prequalctl db upgrade" in result.stdout
