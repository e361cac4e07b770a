"""Each application belongs to the client that submitted it; others cannot tell it exists."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

from devstack.postgres import Postgres
from prequal.db import migrate
from tests.applications import application, synthetic_pan
from tests.integration.submission.conftest import ApiProcess, start_api
from tests.tokens import Oidc


def test_another_client_reading_an_application_gets_the_unknown_id_404(
    api: ApiProcess, oidc: Oidc
) -> None:
    with api.client() as owner, api.client(token=oidc.token(oidc.other)) as other:
        app_id = owner.post("/applications", json=application()).json()["application_id"]
        assert owner.get(f"/applications/{app_id}/status").status_code == 200
        theirs = other.get(f"/applications/{app_id}/status")
        unknown = other.get(f"/applications/{uuid.uuid4()}/status")
    assert theirs.status_code == unknown.status_code == 404
    strip = ("request_id", "message")
    assert {k: v for k, v in theirs.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


def test_the_409_goes_only_to_the_owner_and_another_clients_duplicate_is_flagged(
    api: ApiProcess, oidc: Oidc, database_url: str
) -> None:
    pan_number = synthetic_pan()
    with api.client() as owner, api.client(token=oidc.token(oidc.other)) as other:
        first = owner.post("/applications", json=application(pan_number=pan_number))
        elsewhere = other.post("/applications", json=application(pan_number=pan_number))
        again = owner.post("/applications", json=application(pan_number=pan_number))
        other_again = other.post("/applications", json=application(pan_number=pan_number))
    assert first.status_code == 202
    assert elsewhere.status_code == 202  # tells the other client nothing about the applicant
    assert again.status_code == 409
    assert again.json()["application_id"] == first.json()["application_id"]
    assert other_again.status_code == 409  # the other client's own duplicate, its own id
    assert other_again.json()["application_id"] == elsewhere.json()["application_id"]
    with psycopg.connect(database_url) as conn:
        flags = dict(
            conn.execute(
                "SELECT id::text, recent_application_elsewhere FROM applications "
                "WHERE id = ANY(%s::uuid[])",
                ([first.json()["application_id"], elsewhere.json()["application_id"]],),
            ).fetchall()
        )
    assert flags == {
        first.json()["application_id"]: False,
        elsewhere.json()["application_id"]: True,
    }


def test_idempotency_keys_are_per_client_and_stored_only_as_an_hmac(
    api: ApiProcess, oidc: Oidc, database_url: str
) -> None:
    key = f"retry-{uuid.uuid4()}"
    with api.client() as mine, api.client(token=oidc.token(oidc.other)) as theirs:
        a = mine.post("/applications", json=application(), headers={"Idempotency-Key": key})
        b = theirs.post("/applications", json=application(), headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 202
    assert a.json()["application_id"] != b.json()["application_id"]
    assert "idempotent-replayed" not in b.headers
    with psycopg.connect(database_url) as conn:
        dump = conn.execute("SELECT row_to_json(k)::text FROM idempotency_keys k").fetchall()
    assert key not in str(dump)


def test_twenty_simultaneous_submissions_under_repeatable_read_give_exactly_one_202(
    postgres: Postgres, tmp_path: Path, api_env: dict[str, str], oidc: Oidc
) -> None:
    url = postgres.create_database("sub_repeatable_read")
    migrate.upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "ALTER DATABASE sub_repeatable_read SET default_transaction_isolation = "
            "'repeatable read'"
        )
    api = start_api(tmp_path, {**api_env, "DATABASE_URL": url}, "api-rr", token=oidc.token())
    body = application()

    def submit(_: int) -> httpx.Response:
        with api.client() as http:
            return http.post("/applications", json=body)

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(submit, range(20)))
    finally:
        api.process.stop()
    assert sorted(r.status_code for r in responses) == [202] + [409] * 19
    with psycopg.connect(url) as conn:
        isolation = conn.execute("SHOW default_transaction_isolation").fetchone()
    assert isolation == ("repeatable read",)  # the setting was in force for everyone else


def test_an_idempotency_key_past_its_retention_is_not_replayed_and_is_purged(
    api: ApiProcess, database_url: str
) -> None:
    key = f"retry-{uuid.uuid4()}"
    body = application()
    with api.client() as http:
        first = http.post("/applications", json=body, headers={"Idempotency-Key": key})
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 second' "
                "WHERE application_id = %s",
                (first.json()["application_id"],),
            )
        again = http.post("/applications", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    assert again.status_code == 409  # a new submission of the same PAN, not a replay
    assert again.json()["application_id"] == first.json()["application_id"]
    assert "idempotent-replayed" not in again.headers
