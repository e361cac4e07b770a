"""prequal-api while PostgreSQL is down: 503 with Retry-After, not ready, still alive; then back."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import Postgres
from prequal.db import migrate
from prequalctl.keys import for_role
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess, base_env, start_api
from tests.tokens import Oidc


@pytest.fixture(scope="module")
def outage_api(
    private_postgres: Postgres,
    api_env: dict[str, str],
    oidc: Oidc,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiProcess]:
    """The API on a PostgreSQL of this module's own: the outage below stops that server, so a
    restart that failed would break only this module, not the session's server (nor Hydra's
    database on it)."""
    url = private_postgres.create_database("sub_outage")
    migrate.upgrade(url)
    proc = start_api(
        tmp_path_factory.mktemp("outage-api"), {**api_env, "DATABASE_URL": url}, token=oidc.token()
    )
    try:
        yield proc
    finally:
        proc.process.stop()


def test_api_answers_503_while_postgres_is_down_and_recovers_after_restart(
    outage_api: ApiProcess, private_postgres: Postgres
) -> None:
    with outage_api.client() as client:
        assert client.post("/applications", json=application()).status_code == 202
        private_postgres.stop()
        try:
            down = client.post("/applications", json=application())
            assert down.status_code == 503
            assert down.headers["retry-after"] == "5"
            assert down.json()["error_code"] == "DATABASE_UNAVAILABLE"
            assert set(down.json()) == {"error_code", "message", "details", "request_id"}
            assert client.get("/ready").status_code == 503
            missing = "/applications/00000000-0000-0000-0000-000000000000/status"
            assert client.get(missing).status_code == 503
            assert client.get("/health").status_code == 200
            assert outage_api.process.alive()
        finally:
            private_postgres.start()

        deadline = time.monotonic() + 30
        codes: list[int] = []
        while time.monotonic() < deadline:
            codes.append(client.post("/applications", json=application()).status_code)
            if codes[-1] == 202:
                break
            time.sleep(0.5)
        assert codes[-1] == 202, f"no recovery after restart: {codes}"
        assert client.get("/ready").status_code == 200
    assert outage_api.process.alive()


def test_api_answers_503_while_the_database_refuses_writes(
    outage_api: ApiProcess, private_postgres: Postgres
) -> None:
    """Found by the chaos run: a database that answers but is read-only (a failover to a
    standby) made every POST a 500. On this module's own server, like the outage above."""
    database = "sub_outage"

    def read_only(on: bool) -> None:
        setting = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        with psycopg.connect(private_postgres.url_for("postgres"), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" {setting}')
            # The setting applies to new sessions: the API's pooled ones are ended.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    with outage_api.client() as client:
        assert client.post("/applications", json=application()).status_code == 202
        read_only(True)
        try:
            # The first requests meet the pool's terminated connections (503s already); more
            # than the pool's maximum (16) reach the fresh sessions, which refuse writes: 503.
            codes = {
                client.post("/applications", json=application()).status_code for _ in range(24)
            }
            assert codes == {503}
            assert outage_api.process.alive()
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
        env=base_env(DATABASE_URL=url, API_PORT="1", **for_role(pan_keys, "api"), **oidc.api_env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "prequalctl db upgrade" in result.stdout
