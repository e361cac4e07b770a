"""Consent to a soft credit inquiry: required on POST, stored and audited with the submission
in one transaction, returned on GET (DESIGN.md, "HTTP API")."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.applications import application, consent


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"soft_inquiry": False}, "consent.soft_inquiry"),
        ({"soft_inquiry": None}, "consent.soft_inquiry"),
        ({"text_version": ""}, "consent.text_version"),
        ({"text_version": "v1\tdraft"}, "consent.text_version"),
        ({"channel": "web browser"}, "consent.channel"),
        ({"captured_at": "2026-12-01T10:00:00"}, "consent.captured_at"),
        (
            {"captured_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
            "consent.captured_at",
        ),
    ],
)
def test_a_consent_that_is_not_a_yes_is_refused_naming_the_field(
    client: httpx.Client, overrides: dict[str, object], field: str
) -> None:
    body = application(consent=consent(**overrides))
    response = client.post("/applications", json=body)
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert field in response.json()["message"]


@pytest.mark.parametrize("missing", ["soft_inquiry", "text_version", "captured_at", "channel"])
def test_a_consent_without_one_of_its_fields_is_422_naming_it(
    client: httpx.Client, missing: str
) -> None:
    given = consent()
    del given[missing]
    response = client.post("/applications", json=application(consent=given))
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["details"]] == [f"consent.{missing}"]


def test_no_consent_no_application_row(client: httpx.Client, database_url: str) -> None:
    marker = f"Nc{uuid.uuid4().hex[:10]}"
    body = application(first_name=marker)
    del body["consent"]
    response = client.post("/applications", json=body)
    assert response.status_code == 422
    assert response.json()["details"] == [{"field": "consent", "message": "Field required"}]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM applications WHERE first_name = %s", (marker,)
        ).fetchone()
    assert rows == (0,)


def test_consent_is_stored_audited_and_returned_on_get(
    client: httpx.Client, database_url: str
) -> None:
    captured = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    given = consent(text_version="kfs-consent-2026.11", captured_at=captured.isoformat())
    given["channel"] = "MOBILE_APP"
    response = client.post("/applications", json=application(consent=given))
    assert response.status_code == 202, response.text
    application_id = response.json()["application_id"]

    status = client.get(f"/applications/{application_id}/status").json()
    assert status["consent"] == {
        "soft_inquiry": True,
        "text_version": "kfs-consent-2026.11",
        "captured_at": "2026-12-01T09:30:00Z",
        "channel": "MOBILE_APP",
    }
    assert status["decision"] is None  # PENDING: nothing decided yet
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT soft_inquiry, text_version, captured_at, channel, actor FROM consents "
            "WHERE application_id = %s",
            (application_id,),
        ).fetchone()
        audit = conn.execute(
            "SELECT actor, detail FROM audit_log WHERE application_id = %s AND action = 'consent'",
            (application_id,),
        ).fetchall()
    assert row == (True, "kfs-consent-2026.11", captured, "MOBILE_APP", "prequal-api")
    assert audit == [("prequal-api", "soft inquiry, text kfs-consent-2026.11 via MOBILE_APP")]


def test_a_duplicate_submission_stores_no_second_consent(
    client: httpx.Client, database_url: str
) -> None:
    first = application()
    assert client.post("/applications", json=first).status_code == 202
    again = client.post("/applications", json={**first, "consent": consent(channel="BRANCH")})
    assert again.status_code == 409
    with psycopg.connect(database_url) as conn:
        channels = conn.execute(
            "SELECT c.channel FROM consents c JOIN applications a ON a.id = c.application_id "
            "WHERE a.first_name = %s AND c.recorded_at > now() - interval '1 minute'",
            (first["first_name"],),
        ).fetchall()
    assert ("BRANCH",) not in channels
