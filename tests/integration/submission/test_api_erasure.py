"""DELETE /applications/{id}: crypto-shredding for the owning client with `applications:erase`;
the decision, the consent and the audit trail stay, and the status says the data was erased."""

from __future__ import annotations

import json
import uuid

import psycopg

from prequal import erasure
from tests.applications import application
from tests.integration.submission.conftest import ApiProcess
from tests.tokens import Oidc


def test_erasure_deletes_the_data_key_and_personal_columns_and_keeps_the_rest(
    api: ApiProcess, database_url: str
) -> None:
    with api.client() as owner:
        app_id = owner.post("/applications", json=application()).json()["application_id"]
        erased = owner.delete(f"/applications/{app_id}")
        status = owner.get(f"/applications/{app_id}/status")
        again = owner.delete(f"/applications/{app_id}")
    assert erased.status_code == 204
    assert erased.content == b""
    assert again.status_code == 204  # idempotent
    assert status.status_code == 200
    body = status.json()
    assert body["status"] == "PENDING"
    assert body["pan_masked"] == "X" * 10
    assert body["consent"] is not None
    assert body["personal_data_erasure"]["message"] == erasure.ERASED_NOTICE
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT row_to_json(a)::jsonb FROM applications a WHERE id = %s", (app_id,)
        ).fetchone()
        keys = conn.execute(
            "SELECT count(*) FROM application_data_keys WHERE application_id = %s", (app_id,)
        ).fetchone()
        audit = conn.execute(
            "SELECT action, actor, key_id, detail FROM audit_log WHERE application_id = %s "
            "ORDER BY id",
            (app_id,),
        ).fetchall()
    assert row is not None
    stored = row[0]
    for column in (
        "pan_ciphertext",
        "pan_blind_index",
        "pan_masked",
        "personal_ciphertext",
        "first_name",
        "last_name",
        "date_of_birth",
        "email",
        "phone_number",
    ):
        assert stored[column] is None, column
    assert stored["personal_data_erased_at"] is not None
    assert stored["requested_amount"] is not None  # what explains a decision stays
    assert keys == (0,)
    actions = [a[0] for a in audit]
    assert actions[:2] == ["encrypt", "consent"]
    assert actions[2:] == ["erase", "read", "erase"]  # the status read between is audited too
    assert audit[2][2] == "v1"  # the sealing key id whose data key was shredded
    assert audit[4][2] is None  # nothing left to shred the second time
    assert "erasure requested by client" in json.dumps(audit[2])


def test_another_clients_or_an_unknown_id_is_a_404_and_erases_nothing(
    api: ApiProcess, oidc: Oidc, database_url: str
) -> None:
    with api.client() as owner, api.client(token=oidc.token(oidc.other)) as other:
        app_id = owner.post("/applications", json=application()).json()["application_id"]
        theirs = other.delete(f"/applications/{app_id}")
        unknown = other.delete(f"/applications/{uuid.uuid4()}")
        status = owner.get(f"/applications/{app_id}/status").json()
    assert theirs.status_code == unknown.status_code == 404
    assert status["personal_data_erasure"] is None
    with psycopg.connect(database_url) as conn:
        keys = conn.execute(
            "SELECT count(*) FROM application_data_keys WHERE application_id = %s", (app_id,)
        ).fetchone()
    assert keys == (1,)


def test_without_the_erase_scope_it_is_a_403(api: ApiProcess, oidc: Oidc) -> None:
    with api.client() as owner:
        app_id = owner.post("/applications", json=application()).json()["application_id"]
    narrow = oidc.token(scope="applications:read applications:write")
    with api.client(token=narrow) as client:
        refused = client.delete(f"/applications/{app_id}")
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "INSUFFICIENT_SCOPE"
