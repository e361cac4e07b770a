"""An audit that names who: every row carries the OAuth2 client, the request id and the
purpose; refused reads are rows too; nobody can change or remove a row; `prequalctl audit`
answers "who accessed application X" and "what did client Y read". Real API, Hydra tokens,
real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from prequalctl.main import main as prequalctl
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess
from tests.tokens import Oidc


def _rows(database_url: str, application_id: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT action, outcome, principal, actor, request_id, purpose FROM audit_log "
            "WHERE application_id = %s ORDER BY id",
            (application_id,),
        ).fetchall()


def test_submission_and_reads_are_audited_with_the_client_the_request_and_the_purpose(
    api: ApiProcess, oidc: Oidc, database_url: str
) -> None:
    owner, other = oidc.client.client_id, oidc.other.client_id
    with api.client() as mine, api.client(token=oidc.token(oidc.other)) as theirs:
        posted = mine.post(
            "/applications", json=application(), headers={"X-Request-ID": "req-submit-1"}
        )
        app_id = posted.json()["application_id"]
        read = mine.get(f"/applications/{app_id}/status", headers={"X-Request-ID": "req-read-1"})
        probe = theirs.get(
            f"/applications/{app_id}/status", headers={"X-Request-ID": "req-probe-1"}
        )
    assert (posted.status_code, read.status_code, probe.status_code) == (202, 200, 404)
    assert _rows(database_url, app_id) == [
        ("encrypt", "ok", owner, "prequal-api", "req-submit-1", "application-submission"),
        ("consent", "ok", owner, "prequal-api", "req-submit-1", "consent-capture"),
        ("read", "ok", owner, "prequal-api", "req-read-1", "status-read"),
        ("read", "refused", other, "prequal-api", "req-probe-1", "status-read"),
    ]


def test_a_request_without_an_x_request_id_is_audited_under_the_one_the_api_gave_it(
    api: ApiProcess, database_url: str
) -> None:
    with api.client() as http:
        posted = http.post("/applications", json=application())
    given = posted.headers["x-request-id"]
    rows = _rows(database_url, posted.json()["application_id"])
    assert {row[4] for row in rows} == {given}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET principal = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
def test_the_audit_log_refuses_to_be_rewritten_even_by_a_superuser(
    api: ApiProcess, database_url: str, statement: str
) -> None:
    with api.client() as http:
        assert http.post("/applications", json=application()).status_code == 202
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone() == before


def test_prequalctl_audit_says_who_accessed_an_application_and_what_a_client_read(
    api: ApiProcess,
    oidc: Oidc,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reader = oidc.client_for()
    with api.client() as mine, api.client(token=oidc.token(reader)) as theirs:
        app_id = mine.post("/applications", json=application()).json()["application_id"]
        assert mine.get(f"/applications/{app_id}/status").status_code == 200
        assert theirs.get(f"/applications/{app_id}/status").status_code == 404
        own_id = theirs.post("/applications", json=application()).json()["application_id"]
        assert theirs.get(f"/applications/{own_id}/status").status_code == 200
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRETS_DIR", "/nonexistent")

    assert prequalctl(["audit", "--application", app_id]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "AT",
        "APPLICATION_ID",
        "ACTION",
        "OUTCOME",
        "PRINCIPAL",
        "PURPOSE",
        "REQUEST",
    ]
    who = [(line.split()[2], line.split()[3], line.split()[4]) for line in lines[1:]]
    assert who == [
        ("encrypt", "ok", oidc.client.client_id),
        ("consent", "ok", oidc.client.client_id),
        ("read", "ok", oidc.client.client_id),
        ("read", "refused", reader.client_id),
    ]

    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert (
        prequalctl(["audit", "--principal", reader.client_id, "--since", since, "-o", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["application_id"], r["action"], r["outcome"]) for r in rows] == [
        (app_id, "read", "refused"),
        (own_id, "encrypt", "ok"),
        (own_id, "consent", "ok"),
        (own_id, "read", "ok"),
    ]
    assert all(r["request_id"] for r in rows)

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert prequalctl(["audit", "--principal", reader.client_id, "--since", future]) == 0
    assert capsys.readouterr().out.strip() == "No audit rows found."


def test_prequalctl_audit_needs_a_filter_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert prequalctl(["audit"]) == 2
    assert "--application ID, --principal NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prequalctl(["audit", "--principal", "x", "--since", "yesterday"])
    assert "neither a duration" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prequalctl(["audit", "--application", str(uuid.uuid4())[:8]])
