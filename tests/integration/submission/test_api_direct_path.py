"""The hot routes' direct path (prequal_api.direct_route) answers as FastAPI's handler does.

A request the direct path is sure about (`Content-Type: application/json`, a status read with
no query string) is answered by plain calls; any other goes to FastAPI's own handler. Each test
sends the same thing both ways and compares what the client and the database get.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from prequal_api.repository import bigint_array, bytea_array
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess

DIRECT = {"Content-Type": "application/json"}
# The same media type with a parameter: FastAPI's handler reads it, the direct path does not.
GENERAL = {"Content-Type": "application/json; charset=utf-8"}


@pytest.fixture
def anonymous(api: ApiProcess) -> Iterator[httpx.Client]:
    with api.client(token="") as http:
        yield http


def _stable_headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The headers but those that differ per request (date, request id)."""
    return sorted((k, v) for k, v in response.headers.items() if k not in ("date", "x-request-id"))


def _event_amounts(database_url: str, application_id: str) -> tuple[Any, Any]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT payload->>'requested_amount', payload->>'monthly_income' "
            "FROM outbox_events WHERE aggregate_id = %s",
            (uuid.UUID(application_id),),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_amounts_are_read_as_fastapi_reads_them(client: httpx.Client, database_url: str) -> None:
    # Exponents and trailing zeros: pydantic's own JSON parser (model_validate_json) would store
    # 100000 where json.loads + validation stores 100000.0; the event carries what was stored.
    template = json.dumps(application(requested_amount=0, monthly_income=0))
    amounts = template.replace('"requested_amount": 0', '"requested_amount": 1e5').replace(
        '"monthly_income": 0', '"monthly_income": 85000.50'
    )
    answers = {}
    for path, headers in (("direct", DIRECT), ("general", GENERAL)):
        body = json.loads(amounts)
        body["pan_number"] = application()["pan_number"]
        response = client.post("/applications", content=json.dumps(body), headers=headers)
        assert response.status_code == 202, response.text
        answers[path] = _event_amounts(database_url, response.json()["application_id"])
    assert answers["direct"] == answers["general"]
    assert answers["direct"][0] == "100000.0"


def test_accepted_answers_have_one_shape(client: httpx.Client) -> None:
    direct = client.post("/applications", content=json.dumps(application()), headers=DIRECT)
    general = client.post("/applications", content=json.dumps(application()), headers=GENERAL)
    assert direct.status_code == general.status_code == 202
    assert direct.headers["content-type"] == general.headers["content-type"]
    assert list(direct.json()) == list(general.json())


def test_a_status_read_is_the_same_bytes_either_way(client: httpx.Client) -> None:
    accepted = client.post("/applications", json=application())
    application_id = accepted.json()["application_id"]
    direct = client.get(f"/applications/{application_id}/status")
    general = client.get(f"/applications/{application_id}/status", params={"wait": 0})
    assert direct.status_code == general.status_code == 200
    assert direct.content == general.content
    assert _stable_headers(direct) == _stable_headers(general)


def test_a_valid_body_without_a_token_is_a_401(anonymous: httpx.Client) -> None:
    # A valid body without a token: the direct path authorizes, 401 with the challenge.
    response = anonymous.post("/applications", content=json.dumps(application()), headers=DIRECT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="prequal-api"'
    assert response.json()["error_code"] == "UNAUTHORIZED"


def test_array_literals_read_back_as_the_values(database_url: str) -> None:
    awkward = [b"", b'"', b"\\", b"{},", b"\x00\xff", bytes(range(32))]
    keys = [-(2**63), -1, 0, 2**63 - 1]
    with psycopg.connect(database_url) as conn:
        for prepare in (False, True):
            row = conn.execute(
                "SELECT %s::bytea[], %s::bigint[]",
                (bytea_array(awkward), bigint_array(keys)),
                prepare=prepare,
            ).fetchone()
            assert row is not None
            assert [bytes(value) for value in row[0]] == awkward
            assert row[1] == keys
