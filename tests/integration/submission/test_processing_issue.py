"""`GET /applications/{id}/status` shows a dead letter's reason as `processing_issue` (written
by the consumers, migration 0004) until the application reaches a final status."""

from __future__ import annotations

import httpx
import psycopg

from tests.applications import application


def test_status_shows_the_processing_issue_until_it_is_cleared(
    client: httpx.Client, database_url: str
) -> None:
    created = client.post("/applications", json=application()).json()
    app_id = created["application_id"]
    url = f"/applications/{app_id}/status"
    assert client.get(url).json()["processing_issue"] is None
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE applications SET processing_issue_code = 'UnknownKeyIdError', "
            "processing_issue_message = 'credit-service could not process it', "
            "processing_issue_since = '2026-12-02T07:00:00Z' WHERE id = %s",
            (app_id,),
        )
    issue = client.get(url).json()["processing_issue"]
    assert issue == {
        "code": "UnknownKeyIdError",
        "message": "credit-service could not process it",
        "since": "2026-12-02T07:00:00Z",
    }
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE applications SET processing_issue_code = NULL, "
            "processing_issue_message = NULL, processing_issue_since = NULL WHERE id = %s",
            (app_id,),
        )
    assert client.get(url).json()["processing_issue"] is None
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schema["ProcessingIssue"]["properties"]) == {"code", "message", "since"}
